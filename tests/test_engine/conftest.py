"""Helpers for engine tests: tiny official-format TSV data and a tiny-model Runner config."""
import base64
import copy
import io
import json
import logging
import os.path as osp
import random

import pytest
from PIL import Image

from tests.conftest import TINY_MODEL

COLORS = {'红色': (220, 40, 40), '绿色': (40, 170, 60), '蓝色': (40, 80, 220), '黄色': (240, 210, 40)}
SHAPES = ('圆', '方块')


def write_tiny_tsv(root: str, split: str, num: int, seed: int = 0, size: int = 32) -> None:
    """``{split}_imgs.tsv`` + ``{split}_texts.jsonl`` with ``num`` coloured-shape images."""
    rng = random.Random(seed)
    tsv, texts = [], []
    for k in range(num):
        color = rng.choice(list(COLORS))
        shape = rng.choice(SHAPES)
        img = Image.new('RGB', (size, size), (128, 128, 128))
        pixels = img.load()
        for y in range(size // 4, 3 * size // 4):
            for x in range(size // 4, 3 * size // 4):
                if shape == '方块' or (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 4) ** 2:
                    pixels[x, y] = COLORS[color]
        buf = io.BytesIO()
        img.save(buf, format='PNG')
        tsv.append(f'{k + 1}\t{base64.b64encode(buf.getvalue()).decode()}\n')
        texts.append(json.dumps(dict(text_id=k + 1, text=f'一个{color}的{shape}', image_ids=[k + 1]),
                                ensure_ascii=False) + '\n')
    with open(osp.join(root, f'{split}_imgs.tsv'), 'w') as f:
        f.writelines(tsv)
    with open(osp.join(root, f'{split}_texts.jsonl'), 'w', encoding='utf-8') as f:
        f.writelines(texts)


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('tiny_tsv'))
    write_tiny_tsv(root, 'train', 16, seed=0)
    write_tiny_tsv(root, 'test', 8, seed=1)
    return root


RN_IMAGE_ENCODER = dict(type='ModifiedResNet', arch=dict(layers=(1, 1, 1, 1), width=8),
                        img_size=32, output_dim=32, heads=2)


def dump_with_runtime(tiny: dict, path: str) -> str:
    """Write ``tiny`` (a :func:`tiny_runner_cfg` dict) merged over the repo's default_runtime.py to ``path``.

    The runtime's own custom hooks come first; ``tiny``'s ``LogitScaleClampHook`` (the runtime has it) is
    dropped and its other custom hooks follow. ``tiny`` must carry no ``work_dir`` (tools pass one).
    """
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                                   'configs', '_base_', 'default_runtime.py'))
    tiny.pop('work_dir', None)
    tiny['custom_hooks'] = cfg.custom_hooks + tiny['custom_hooks'][1:]
    cfg.merge_from_dict(tiny)
    cfg.dump(path)
    return path


def tiny_runner_cfg(work_dir: str, data_root: str, max_epochs: int = 2, batch_size: int = 8,
                    custom_hooks=(), image_encoder: dict = None, val: bool = False,
                    accum_freq: int = 1, seed: int = 0) -> dict:
    """A complete Runner config (dict) training the tiny model on :func:`write_tiny_tsv` data."""
    model = copy.deepcopy(TINY_MODEL)
    model['accum_freq'] = accum_freq
    if image_encoder is not None:
        model['image_encoder'] = copy.deepcopy(image_encoder)
    tokenizer = model['tokenizer']
    pipeline = [dict(type='LoadImage'), dict(type='ResizeExact', scale=32),
                dict(type='TokenizeText', tokenizer=tokenizer), dict(type='PackCLIPInputs')]
    cfg = dict(
        default_scope='cnclip_mm',
        runner_type='CLIPRunner',
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=batch_size, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(type='ImageTextTSVDataset', data_root=data_root, split='train',
                         pipeline=pipeline)),
        optim_wrapper=dict(constructor='CLIPOptimWrapperConstructor',
                           optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98), eps=1e-6,
                                          weight_decay=0.2)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
                         dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
                              convert_to_iter_based=True)],
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1),
        default_hooks=dict(checkpoint=dict(type='CLIPCheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='LogitScaleClampHook'), *custom_hooks],
        randomness=dict(seed=seed),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        model_wrapper_cfg=dict(type='cnclip_mm.CLIPDistributedDataParallel', broadcast_buffers=False),
        log_level='WARNING',
    )
    if val:
        cfg.update(
            val_dataloader=dict(
                batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(type='ImageTextTSVDataset', data_root=data_root, split='test',
                             test_mode=True, pipeline=pipeline)),
            val_evaluator=dict(type='RetrievalRecall'),
            val_cfg=dict(type='ValLoop'))
    return cfg


@pytest.fixture(scope='session')
def trained(tiny_data, tmp_path_factory):
    """A finished one-epoch run of :func:`tiny_runner_cfg` (with ``RNGStateHook``): ``(work_dir, cfg)``."""
    from mmengine.config import Config

    from cnclip_mm.engine import CLIPRunner
    work = str(tmp_path_factory.mktemp('ckpt_run'))
    cfg = tiny_runner_cfg(work, data_root=tiny_data, max_epochs=1, custom_hooks=[dict(type='RNGStateHook')])
    CLIPRunner.from_cfg(Config(copy.deepcopy(cfg))).train()
    return work, cfg


def train_logging(runner) -> list:
    """``runner.train()``; returns the messages its logger gave meanwhile."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    runner.logger.addHandler(handler)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(handler)
    return messages
