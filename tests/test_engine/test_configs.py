"""The training configs: recipe values, stage wiring, and the last_checkpoint pointer."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from cnclip_mm.engine.runner.clip_runner import resolve_checkpoint

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
VARIANTS = {'vit-b': 5e-4, 'rn50': 5e-4, 'vit-l-14': 4e-4, 'vit-l-14-336': 4e-4, 'vit-h-14': 5e-4}


def _load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIGS, name))


def _hooks(cfg, kind):
    return [h for h in cfg.custom_hooks if h['type'] == kind]


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_stage_pairs(variant):
    s1, s2 = _load(f'stage1_{variant}.py'), _load(f'stage2_{variant}.py')
    for cfg in (s1, s2):
        assert cfg.default_scope == 'cnclip_mm' and cfg.runner_type == 'CLIPRunner'
        assert cfg.optim_wrapper.constructor == 'CLIPOptimWrapperConstructor'
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.optimizer.lr == VARIANTS[variant]
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.2
        assert cfg.optim_wrapper.optimizer.betas == ((0.9, 0.999) if variant == 'rn50' else (0.9, 0.98))
        assert cfg.param_scheduler[0].type == 'LinearLR' and cfg.param_scheduler[0].end == 500
        assert cfg.param_scheduler[1].type == 'CosineAnnealingLR'
        assert cfg.default_hooks.logit_scale_clamp.type == 'LogitScaleClampHook'
        assert cfg.default_hooks.rng_state.type == 'RNGStateHook'
        assert cfg.default_hooks.bad_samples.type == 'BadSampleReportHook'
    lock = _hooks(s1, 'TowerLockHook')
    assert lock and lock[0].get('unlock_epoch') is None and lock[0].get('unlock_iter') is None
    assert s1.model.image_encoder.init_cfg.type == 'OpenAICLIPVisual'
    assert s1.model.text_encoder.pretrained.startswith('hfl/')
    assert not _hooks(s2, 'TowerLockHook')
    assert s2.load_from == f'work_dirs/stage1_{variant}/last_checkpoint'
    assert s2.model.image_encoder.init_cfg is None and s2.model.text_encoder.pretrained is None
    if variant == 'vit-l-14-336':
        assert s1.train_dataloader.dataset.pipeline[0].scale == 336


def test_onerun_and_finetunes():
    one = _load('onerun_vit-b.py')
    assert _hooks(one, 'TowerLockHook')[0].unlock_epoch == 15
    for name, lr, epochs, root in (('muge', 5e-5, 3, 'data/muge'),
                                   ('flickr30k-cn', 5e-5, 3, 'data/flickr30k-cn'),
                                   ('coco-cn', 3e-5, 20, 'data/coco-cn')):
        cfg = _load(f'finetune_{name}_vit-b-16.py')
        assert cfg.optim_wrapper.optimizer.lr == lr and cfg.optim_wrapper.optimizer.weight_decay == 0.001
        assert cfg.train_cfg.max_epochs == epochs and cfg.param_scheduler[1].end == epochs
        assert cfg.param_scheduler[0].end == 100 and cfg.train_dataloader.batch_size == 128
        assert cfg.train_dataloader.dataset.data_root == root
        assert cfg.model.init_cfg.type == 'ChineseCLIPCheckpoint'
        assert bool(cfg.model.image_encoder.get('grad_checkpointing')) == (name == 'coco-cn')


def test_runtime_defaults():
    cfg = _load(osp.join('_base_', 'default_runtime.py'))
    ckpt = cfg.default_hooks.checkpoint
    assert ckpt.save_best == 'retrieval/mean_recall' and ckpt.rule == 'greater'
    assert ckpt.by_epoch is False and ckpt.interval > 0
    assert cfg.default_hooks.logger.type == 'LoggerHook'
    assert cfg.model_wrapper_cfg.type == 'cnclip_mm.CLIPDistributedDataParallel'
    assert len([p for p in glob.glob(osp.join(CONFIGS, 'stage[12]_*.py')) if not p.endswith('_wds.py')]) == 10


def test_last_checkpoint_pointer(tmp_path):
    ckpt = tmp_path / 'epoch_3.pth'
    ckpt.write_bytes(b'')
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text(str(ckpt))
    assert resolve_checkpoint(str(pointer)) == str(ckpt)
    pointer.write_text('/elsewhere/epoch_3.pth')  # work dir moved: look beside the pointer
    assert resolve_checkpoint(str(pointer)) == str(ckpt)
    assert resolve_checkpoint(str(ckpt)) == str(ckpt)
    with pytest.raises(FileNotFoundError, match='previous stage'):
        resolve_checkpoint(str(tmp_path / 'nowhere' / 'last_checkpoint'))
    pointer.write_text('')
    with pytest.raises(ValueError, match='empty'):
        resolve_checkpoint(str(pointer))
