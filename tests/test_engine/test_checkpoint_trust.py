"""Every loading path: nothing stored in a checkpoint runs, mismatches fail listing the keys, and a
re-saved own checkpoint loads everywhere.

Paths: ``init_model`` (with and without a config), ``load_checkpoint`` (what tools/test.py calls), the
``ChineseCLIPCheckpoint`` initializer, ``load_from`` / ``--load-from``, ``--resume`` and
tools/model_converters/mm_to_hf.py.
"""
import copy
import copyreg
import importlib.util
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

from cnclip_mm.engine import CLIPRunner
from cnclip_mm.models.builder import init_model
from cnclip_mm.models.converters import CheckpointMismatchError, load_checkpoint, safe_torch_load
from cnclip_mm.models.converters.stored_config import StoredConfigError, parse_model_assignment
from cnclip_mm.registry import MODELS
from tools.train import main as train_main

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def own(trained):
    work, cfg = trained
    path = osp.join(work, 'epoch_1.pth')
    assert safe_torch_load(path)['meta']['model_cfg']['type'] == 'ChineseCLIP'  # stored as data
    return path, cfg


def _mm_to_hf(argv):
    spec = importlib.util.spec_from_file_location('mm_to_hf', osp.join(REPO, 'tools', 'model_converters', 'mm_to_hf.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _runner(cfg, work, load_from, resume=False, **extra):
    cfg = copy.deepcopy(cfg)
    cfg.update(work_dir=work, load_from=load_from, resume=resume, **extra)
    runner = CLIPRunner.from_cfg(Config(cfg))
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)
    return runner


def _every_path(path, cfg, tmp_path):
    """Yield (name, call) for each way a checkpoint is loaded."""
    model_cfg = cfg['model']
    yield 'init_model', lambda: init_model(checkpoint=path)
    yield 'init_model+config', lambda: init_model(model_cfg, path)
    yield 'load_checkpoint', lambda: load_checkpoint(MODELS.build(model_cfg), path)
    yield 'initializer', lambda: MODELS.build(dict(
        model_cfg, init_cfg=dict(type='ChineseCLIPCheckpoint', checkpoint=path))).init_weights()
    yield 'load_from', lambda: _runner(cfg, str(tmp_path / 'load'), path).load_or_resume()
    yield 'resume', lambda: _runner(cfg, str(tmp_path / 'resume'), path, resume=True).load_or_resume()
    yield 'mm_to_hf', lambda: _mm_to_hf([path, str(tmp_path / 'hf')])


def _evil(value, payload):
    if isinstance(value, str):
        return payload
    if isinstance(value, dict):
        return {k: _evil(v, payload) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_evil(v, payload) for v in value)
    return value


def test_code_stored_in_a_checkpoint_never_runs(own, tmp_path):
    path, cfg = own
    marker = tmp_path / 'PWNED'
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    ckpt = safe_torch_load(path)
    meta = _evil({k: v for k, v in ckpt['meta'].items() if k != 'model_cfg'}, code)  # an older file: text only
    meta.update(cfg=f'{code}\nmodel = dict(type={code})\n', config=f'{code}\ngpu_ids = [0]\n')
    ckpt.update(meta=meta, message_hub=dict(ckpt['message_hub'],
                                            runtime_info=_evil(ckpt['message_hub']['runtime_info'], code)))
    evil = str(tmp_path / 'evil.pth')
    torch.save(ckpt, evil)
    refused = {'init_model', 'mm_to_hf'}  # they would need the stored config: a clear refusal instead
    for name, call in _every_path(evil, cfg, tmp_path):
        if name in refused:
            with pytest.raises(StoredConfigError, match=r'never executed; pass the model config explicitly'):
                call()
        else:
            call()
        assert not marker.exists(), name
    # code in a last_checkpoint pointer is only ever a (missing) path
    os.makedirs(tmp_path / 'w')
    (tmp_path / 'w' / 'last_checkpoint').write_text(code)
    with pytest.raises(FileNotFoundError):
        _runner(cfg, str(tmp_path / 'w2'), str(tmp_path / 'w' / 'last_checkpoint')).load_or_resume()
    assert not marker.exists()


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_a_pickle_with_code_is_refused_by_every_path(own, tmp_path):
    path, cfg = own
    marker = tmp_path / 'PWNED'
    ckpt = safe_torch_load(path)
    ckpt['meta']['dataset_meta'] = _Payload(marker)
    evil = str(tmp_path / 'evil.pth')
    torch.save(ckpt, evil)
    for name, call in _every_path(evil, cfg, tmp_path):
        with pytest.raises(RuntimeError, match='weights_only'):
            call()
        assert not marker.exists(), name


def test_stored_config_text_is_parsed_as_literals_only():
    text = "model = dict(type='ChineseCLIP', embed_dim=32, betas=(0.9, -1e-6), t={'a': [None, True]})\nx = 1 + 1\n"
    assert parse_model_assignment(text) == dict(type='ChineseCLIP', embed_dim=32, betas=(0.9, -1e-6),
                                                t={'a': [None, True]})
    for bad in ("model = dict(type=open('x'))", 'model = dict(**other)', "model = dict(a=1 + 1)",
                "model = [x for x in 'ab']"):
        with pytest.raises(StoredConfigError, match='not a literal'):
            parse_model_assignment(bad)


@pytest.mark.parametrize('damage', ['missing', 'misshaped'])
def test_mismatched_own_checkpoint_fails_in_every_path_listing_keys(own, tmp_path, damage):
    path, cfg = own
    ckpt = safe_torch_load(path)
    if damage == 'missing':
        del ckpt['state_dict']['image_encoder.ln_post.weight']
        expect = r'missing keys \(1\): image_encoder\.ln_post\.weight'
    else:
        ckpt['state_dict']['text_projection'] = torch.zeros(3, 3)
        expect = r'shape mismatches \(1\): text_projection: checkpoint \(3, 3\) vs model \(48, 32\)'
    bad = str(tmp_path / 'bad.pth')
    torch.save(ckpt, bad)
    for _name, call in _every_path(bad, cfg, tmp_path):
        with pytest.raises(CheckpointMismatchError, match=expect):
            call()
    # the documented partial load: load_strict=False loads what matches and goes on
    _runner(cfg, str(tmp_path / 'partial'), bad, load_strict=False).load_or_resume()


def test_resaved_own_checkpoint_loads_in_every_path(own, tmp_path):
    """Re-saved by plain torch.save in a process that never imported cnclip_mm.engine (HistoryBuffer then
    pickles its statistics functions through getattr)."""
    path, cfg = own
    ckpt = safe_torch_load(path)
    reducer = copyreg.dispatch_table.pop(HistoryBuffer)
    try:
        resaved = str(tmp_path / 'resaved.pth')
        torch.save(ckpt, resaved)
    finally:
        copyreg.dispatch_table[HistoryBuffer] = reducer
    with open(resaved, 'rb') as f:
        assert b'getattr' in f.read()
    for _name, call in _every_path(resaved, cfg, tmp_path):
        call()
    runner = train_main([_dump(cfg, tmp_path), '--work-dir', str(tmp_path / 'r'), '--resume', resaved])
    assert runner.iter == 2


def _dump(cfg, tmp_path):
    out = str(tmp_path / 'cfg.py')
    Config(cfg).dump(out)
    return out
