"""configs/demo/finetune_classes_ema.py end to end: class-caption training with the aware loss, zero-shot
validation on the held-out split, and the EMA option (validation runs on, checkpoints store, the EMA weights)."""
import glob
import re

import torch
from mmengine.config import Config
from mmengine.hooks import EMAHook, Hook

from cnclip_mm.datasets import make_demo_classes
from cnclip_mm.evaluation.templates import read_lines
from tests.conftest import REPO


class _Snapshot(Hook):
    """Records the weights and classifier the model validates with (runs after every other hook)."""

    priority = 'LOWEST'

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.classifier = model.class_embeddings.clone()


def test_validation_uses_and_checkpoint_stores_ema_weights(tmp_path):
    data = make_demo_classes(str(tmp_path / 'data'), train_per_class=4, test_per_class=2)
    text = Config.fromfile(str(REPO / 'configs' / 'demo' / 'finetune_classes_ema.py')).pretty_text
    cfg = Config.fromstring(re.sub(r"'[^']*data/demo_classes", repr(data)[:-1], text), '.py')
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
    cfg.custom_hooks[1]['momentum'] = 0.3  # 5 steps: make the average visibly differ from the weights
    cfg.param_scheduler = []
    cfg.load_from = None
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, by_epoch=True)
    cfg.log_level = 'WARNING'
    from cnclip_mm.engine.runner import CLIPRunner
    runner = CLIPRunner.from_cfg(cfg)
    snapshot = _Snapshot()
    runner.register_hook(snapshot)
    runner.train()

    assert runner.iter == 5  # 40 class-captioned images, batch 8
    assert runner.model.loss_module.positives == ('image_id', 'text', 'label')
    assert 0.0 <= runner.message_hub.get_scalar('val/zeroshot/top1').current() <= 100.0
    ema = next(h for h in runner.hooks if isinstance(h, EMAHook)).ema_model.module
    raw, avg = runner.model.state_dict(), ema.state_dict()
    assert not torch.equal(raw['text_projection'], avg['text_projection'])  # EMA differs from the weights
    for key, value in snapshot.weights.items():  # ... and validation saw the EMA weights
        assert torch.equal(value, avg[key]), key
    ema.set_zeroshot_classes(runner.val_dataloader.dataset.metainfo['classes'],
                             read_lines(f'{data}/templates.txt', 'template'))
    torch.testing.assert_close(snapshot.classifier, ema.class_embeddings)  # classifier built after the swap

    (path,) = glob.glob(f'{cfg.work_dir}/epoch_1.pth')
    ckpt = torch.load(path, weights_only=True)
    assert torch.equal(ckpt['state_dict']['text_projection'], avg['text_projection'])
    assert torch.equal(ckpt['ema_state_dict']['module.text_projection'], raw['text_projection'])
