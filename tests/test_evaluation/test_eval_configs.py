"""Every zero-shot / retrieval test config loads, pairs the right model with the right data and size."""
from pathlib import Path

import pytest
from mmengine.config import Config

from cnclip_mm.utils import share_tokenizer

REPO = Path(__file__).resolve().parents[2]
VARIANTS = {'rn50': ('rn50', 224), 'vit-b-16': ('b-16', 224), 'vit-l-14': ('l-14', 224),
            'vit-l-14-336': ('l-14-336', 336), 'vit-h-14': ('h-14', 224)}
DATA = {'muge': ('data/muge', 'valid', True), 'flickr30k-cn': ('data/flickr30k-cn', 'test', False),
        'coco-cn': ('data/coco-cn', 'test', False)}


def _resize(cfg) -> int:
    scales = [t['scale'] for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'ResizeExact']
    assert len(scales) == 1
    return scales[0]


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_config_pairs(variant):
    arch, size = VARIANTS[variant]
    for name, (root, split, t2i_only) in DATA.items():
        cfg = Config.fromfile(REPO / 'configs' / f'retrieval_{name}_{variant}.py')
        assert cfg.model.image_encoder.arch == arch and _resize(cfg) == size
        ds = cfg.test_dataloader.dataset
        assert (ds.type, ds.data_root, ds.split, ds.test_mode) == ('ImageTextTSVDataset', root, split, True)
        assert cfg.test_evaluator.type == 'RetrievalRecall'
        assert bool(cfg.test_evaluator.get('t2i_only', False)) == t2i_only
        assert cfg.train_dataloader is None and cfg.test_cfg.type == 'TestLoop'
        share_tokenizer(cfg)  # the config's one tokenizer fills the pipeline's TokenizeText
        tokenize = [t for t in ds.pipeline if t['type'] == 'TokenizeText'][0]
        assert tokenize['tokenizer']['context_length'] == 52 and tokenize['tokenizer']['vocab_file'] is None
    cfg = Config.fromfile(REPO / 'configs' / f'zeroshot_cifar100_{variant}.py')
    assert cfg.model.image_encoder.arch == arch and _resize(cfg) == size
    assert cfg.test_dataloader.dataset.type == 'CIFAR100Dataset'
    assert cfg.test_evaluator.type == 'ZeroShotAccuracy'
    assert [h['type'] for h in cfg.custom_hooks] == ['ZeroShotClassesHook']


def test_default_zeroshot_and_elevater():
    cfg = Config.fromfile(REPO / 'configs' / 'zeroshot_cifar100.py')
    assert cfg.model.image_encoder.arch == 'b-16'
    assert Path(cfg.test_dataloader.dataset.data_root) in (Path('data/cifar100'),
                                                           Path('data/cifar100/cifar-100-python'))
    cfg = Config.fromfile(REPO / 'configs' / 'zeroshot_elevater.py')
    assert cfg.test_dataloader.dataset.type == 'ImageFolderZeroShotDataset'
    assert cfg.custom_hooks[0].get('templates', 'official') == 'official'
