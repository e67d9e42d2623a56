"""Mismatch reports, this project's own format, and safe unpickling."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub

from cnclip_mm.models.builder import init_model
from cnclip_mm.models.converters import (
    CheckpointMismatchError,
    load_checkpoint,
    load_state_dict_any,
    official_to_mm,
    safe_torch_load,
)
from cnclip_mm.registry import MODELS


def test_mismatch_error_lists_offending_keys(official_vit, tiny_model_cfg, tmp_path):
    sd, _ = official_vit
    mm = official_to_mm(sd)
    del mm['image_encoder.ln_post.bias']
    mm['text_encoder.bert.extra_head.weight'] = torch.zeros(3)
    model = MODELS.build(tiny_model_cfg)  # conftest's tiny model: text hidden 48 as ours, other vision shapes
    mm['image_encoder.proj'] = torch.zeros(64, 16)
    path = tmp_path / 'bad.pth'
    torch.save(dict(state_dict=mm), path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, str(path))
    message = str(info.value)
    assert str(path) in message and '(mm format)' in message
    assert 'missing keys (1): image_encoder.ln_post.bias' in message
    assert 'unexpected keys (1): text_encoder.bert.extra_head.weight' in message
    assert 'image_encoder.proj: checkpoint (64, 16) vs model (64, 32)' in message

    # non-strict: everything that matches loads, the rest is skipped
    before = model.image_encoder.proj.detach().clone()
    assert load_checkpoint(model, str(path), strict=False) == 'mm'
    assert torch.equal(model.image_encoder.ln_pre.weight, mm['image_encoder.ln_pre.weight'])
    assert torch.equal(model.image_encoder.proj, before)


def test_own_format_with_mmengine_meta(tiny_model_cfg, tmp_path):
    model = MODELS.build(tiny_model_cfg)
    hub = MessageHub.get_instance('test_own_format')
    hub.update_scalar('train/loss', 1.25)
    hub.update_scalar('train/lr', np.float64(1e-4))
    hub.update_info('iter', 7)
    meta = dict(epoch=1, iter=np.int64(7), seed=0, cfg=Config(dict(model=tiny_model_cfg)).pretty_text,
                dataset_meta=dict(classes=['猫', '狗']))
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=meta, state_dict=model.state_dict(), message_hub=hub.state_dict(), optimizer={}), path)

    state_dict, fmt, extra = load_state_dict_any(str(path))
    assert fmt == 'mm' and extra['meta']['dataset_meta']['classes'] == ['猫', '狗']
    # config=None: the config stored in meta is used, so non-inferable settings (heads) survive
    again = init_model(checkpoint=str(path))
    assert again.cfg['image_encoder']['arch'] == tiny_model_cfg['image_encoder']['arch']
    assert again.dataset_meta == dict(classes=['猫', '狗'])
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.eval().extract_image_feat(images), again.extract_image_feat(images))


class _Exploit:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_foreign_pickles_are_refused(tmp_path):
    path = tmp_path / 'evil.pt'
    with open(path, 'wb') as file:
        pickle.dump({'state_dict': {'visual.proj': _Exploit()}}, file, protocol=2)
    with pytest.raises(RuntimeError, match='weights_only=True'):
        safe_torch_load(str(path))


def test_torchscript_and_bad_files_are_explained(tmp_path):
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    scripted.save(str(tmp_path / 'jit.pt'))
    with pytest.raises(ValueError, match='TorchScript archive'):
        load_state_dict_any(str(tmp_path / 'jit.pt'))
    torch.save({'state_dict': {'a': 1}}, tmp_path / 'notensor.pt')
    with pytest.raises(TypeError, match=r"not tensors: \['a'\]"):
        load_state_dict_any(str(tmp_path / 'notensor.pt'))
    torch.save({'backbone.conv.weight': torch.zeros(1)}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='other.pth: unknown checkpoint layout'):
        load_state_dict_any(str(tmp_path / 'other.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        load_state_dict_any(str(tmp_path / 'missing.pt'))


def test_loading_keeps_global_allow_list(tmp_path):
    """Types another module allow-listed globally (for mmengine's resume) stay allow-listed after a load."""
    from mmengine.logging import HistoryBuffer
    torch.save(dict(state_dict={'text_projection': torch.zeros(2, 2)}), tmp_path / 'x.pth')
    initial = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([HistoryBuffer])
    try:
        safe_torch_load(str(tmp_path / 'x.pth'))
        assert HistoryBuffer in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(initial)


def test_is_own_checkpoint_peeks_keys(tiny_model_cfg, tmp_path):
    from cnclip_mm.models.converters import is_own_checkpoint, mm_to_official
    state = MODELS.build(tiny_model_cfg).state_dict()
    own, official, legacy = tmp_path / 'epoch_1.pth', tmp_path / 'epoch_latest.pt', tmp_path / 'old.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), own)
    torch.save(dict(state_dict=mm_to_official(state)), official)
    torch.save(dict(state_dict=state), legacy, _use_new_zipfile_serialization=False)
    assert is_own_checkpoint(str(own))
    assert not is_own_checkpoint(str(official))
    assert not is_own_checkpoint(str(legacy))  # cannot be memory-mapped: left to the full reader
    assert not is_own_checkpoint(str(tmp_path))  # a folder is a Hugging Face export
