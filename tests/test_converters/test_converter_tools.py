"""The converter scripts in tools/model_converters, called through their main(argv)."""
import importlib.util
from pathlib import Path

import pytest
import torch

from cnclip_mm.models.builder import init_model
from cnclip_mm.models.converters import load_state_dict_any, mm_to_mmpretrain

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'model_converters'


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _same(a, b):
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_official_to_mm_then_mm_to_hf_then_hf_to_mm(official_vit, vocab_file, tmp_path):
    _, src = official_vit
    mm_path = tmp_path / 'vit.pth'
    _tool('official_to_mm')([src, str(mm_path)])
    converted, fmt, extra = load_state_dict_any(str(mm_path))
    assert fmt == 'mm' and extra['meta']['source_format'] == 'official'
    _same(converted, load_state_dict_any(src)[0])

    hf_dir = tmp_path / 'hf'
    _tool('mm_to_hf')([str(mm_path), str(hf_dir), '--vocab-file', vocab_file])
    assert {'config.json', 'model.safetensors', 'vocab.txt', 'tokenizer.json'} <= {p.name for p in hf_dir.iterdir()}

    back = tmp_path / 'back.pth'
    _tool('hf_to_mm')([str(hf_dir), str(back)])
    _same(load_state_dict_any(str(back))[0], converted)
    # the stored config carries HF's head counts and vocabulary folder
    model = init_model(checkpoint=str(back))
    assert model.tokenizer.vocab_file == str(hf_dir)


def test_mmpretrain_to_mm_and_wrong_format(official_rn, tmp_path):
    _, src = official_rn
    with pytest.raises(ValueError, match="is a 'official' checkpoint, not 'mmpretrain'"):
        _tool('mmpretrain_to_mm')([src, str(tmp_path / 'x.pth')])
    mmp = tmp_path / 'mmp.pth'
    torch.save(dict(state_dict=mm_to_mmpretrain(load_state_dict_any(src)[0])), mmp)
    _tool('mmpretrain_to_mm')([str(mmp), str(tmp_path / 'rn.pth')])
    _same(load_state_dict_any(str(tmp_path / 'rn.pth'))[0], load_state_dict_any(src)[0])
    with pytest.raises(ValueError, match='no ModifiedResNet image tower'):
        _tool('mm_to_hf')([str(tmp_path / 'rn.pth'), str(tmp_path / 'hf')])
