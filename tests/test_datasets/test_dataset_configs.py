"""configs/_base_/datasets: every file loads, and each builds over tiny data in the real formats; training
decodes JPEGs at the size the crop needs, evaluation keeps the official pixels."""
import io
from pathlib import Path

import numpy as np
import pytest
from data_writers import image_bytes, make_image, write_cifar, write_official
from mmengine.config import Config
from mmengine.dataset import Compose
from PIL import Image

from cnclip_mm.datasets import BadSampleError
from cnclip_mm.datasets.lmdb_writer import build_lmdb
from cnclip_mm.datasets.transforms import LoadImage, LoadRandomResizedCrop, RandomResizedCrop
from cnclip_mm.registry import DATASETS, HOOKS
from cnclip_mm.utils import share_tokenizer

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'datasets'
NAMES = sorted(p.name for p in CONFIGS.glob('*.py'))
TRAINING = [n for n in NAMES if 'train_dataloader' in Config.fromfile(str(CONFIGS / n))]
ZERO_SHOT = ('cifar100.py', 'elevater.py')  # the official zero-shot reader converts to RGB before resizing


def _datasets(dataset: dict):
    if 'datasets' in dataset:  # ConcatDataset
        for child in dataset['datasets']:
            yield from _datasets(child)
    else:
        yield dataset


def _photo(width: int, height: int, mode: str, fmt: str) -> bytes:
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    noise = np.random.default_rng(width).normal(0, 10, (height, width, 1))
    pixels = np.clip(128 + 90 * np.sin(7 * xx + 3 * yy)[..., None] + noise, 0, 255).astype(np.uint8).repeat(3, -1)
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


def local_vocab(cfg, vocab_file):
    """Point every tokenizer in a config at the local vocab (the hub is offline here)."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'ChineseTokenizer':
            cfg['vocab_file'] = vocab_file
        for value in cfg.values():
            local_vocab(value, vocab_file)
    elif isinstance(cfg, list):
        for value in cfg:
            local_vocab(value, vocab_file)
    return cfg


@pytest.mark.parametrize('name', NAMES)
def test_config_loads(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    assert cfg.test_dataloader.dataset.test_mode is True
    assert cfg.test_evaluator.type in ('RetrievalRecall', 'ZeroShotAccuracy')
    if 'train_dataloader' in cfg:
        assert cfg.train_dataloader.dataset.get('test_mode', False) is False


@pytest.mark.parametrize('name', ['muge.py', 'flickr30k-cn.py', 'coco-cn.py'])
def test_retrieval_configs_build(tmp_path, vocab_file, name):
    cfg = Config.fromfile(str(CONFIGS / name)).to_dict()
    for split in ('train', 'valid', 'test'):
        write_official(tmp_path, split=split)
    for key, expected in (('train_dataloader', 4), ('val_dataloader', 6), ('test_dataloader', 6)):
        ds_cfg = local_vocab(cfg[key]['dataset'], vocab_file)
        ds_cfg['data_root'] = str(tmp_path)
        ds = DATASETS.build(ds_cfg)
        assert len(ds) == expected
        assert ds[0]['inputs'].shape == (3, 224, 224)
        assert ds[len(ds) - 1]['data_samples'].text_ids.shape == (52,)


def test_mixed_config_concatenates_tsv_and_lmdb(tmp_path, vocab_file):
    cfg = Config.fromfile(str(CONFIGS / 'muge_flickr30k-cn_mixed.py')).to_dict()
    ds_cfg = local_vocab(cfg['train_dataloader']['dataset'], vocab_file)
    write_official(tmp_path / 'muge')
    write_official(tmp_path / 'flickr', texts=[(21, '海边的日落', [1, 2])])
    build_lmdb(str(tmp_path / 'flickr'), ['train'], show_progress=False)
    ds_cfg['datasets'][0]['data_root'] = str(tmp_path / 'muge')
    ds_cfg['datasets'][1]['data_root'] = str(tmp_path / 'flickr')
    ds = DATASETS.build(ds_cfg)
    assert type(ds).__name__ == 'ConcatDataset' and len(ds) == 4 + 2
    assert ds[0]['data_samples'].text_id == 11 and ds[5]['data_samples'].text_id == 21


def test_demo_config_builds(tmp_path):
    # The demo set's vocab is the top-level tokenizer of configs/demo/, shared into the pipelines.
    cfg = Config.fromfile(str(CONFIGS.parents[1] / 'demo' / 'stage1.py'))
    root = tmp_path / 'demo'
    cfg.merge_from_dict({'tokenizer.vocab_file': str(root / 'vocab.txt')})
    ds_cfg = share_tokenizer(cfg.to_dict())['train_dataloader']['dataset']
    tokenize = next(step for step in ds_cfg['pipeline'] if step['type'] == 'TokenizeText')
    assert tokenize['tokenizer']['vocab_file'] == str(root / 'vocab.txt')
    ds_cfg['data_root'] = str(root)
    ds = DATASETS.build(ds_cfg)  # generates the demo data on first use
    assert len(ds) == 2000
    item = ds[0]
    assert item['inputs'].shape == (3, 64, 64) and item['data_samples'].text_ids.shape == (32,)


def test_zero_shot_configs_build(tmp_path):
    cfg = Config.fromfile(str(CONFIGS / 'cifar100.py')).to_dict()
    write_cifar(tmp_path / 'cifar', n=3)
    ds_cfg = dict(cfg['test_dataloader']['dataset'], data_root=str(tmp_path / 'cifar'))
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == 3 and ds[0]['inputs'].shape == (3, 224, 224) and len(ds.metainfo['classes']) == 100

    cfg = Config.fromfile(str(CONFIGS / 'elevater.py')).to_dict()
    (tmp_path / 'ev' / 'test' / '001').mkdir(parents=True)
    (tmp_path / 'ev' / 'label_cn.txt').write_text('猫\n狗\n', encoding='utf-8')
    (tmp_path / 'ev' / 'test' / '001' / 'x.jpg').write_bytes(make_image(0, fmt='JPEG'))
    ds = DATASETS.build(dict(cfg['test_dataloader']['dataset'], data_root=str(tmp_path / 'ev')))
    assert len(ds) == 1 and ds[0]['data_samples'].gt_label.item() == 1


def test_bad_sample_hook_is_registered():
    assert type(HOOKS.build(dict(type='BadSampleReportHook'))).__name__ == 'BadSampleReportHook'


@pytest.mark.parametrize('name', TRAINING)
def test_train_pipelines_decode_jpegs_at_the_crop_size(name, vocab_file):
    """The built train pipeline starts with the draft-decoding crop, at the config's size and the official scale."""
    cfg = Config.fromfile(str(CONFIGS / name))
    for dataset in _datasets(cfg.to_dict()['train_dataloader']['dataset']):
        pipeline = Compose(local_vocab(dataset['pipeline'], vocab_file))
        first = pipeline.transforms[0]
        assert isinstance(first, LoadRandomResizedCrop) and first.draft and first.decoder in ('pillow', 'simplejpeg')
        assert first.scale == (cfg.img_size, cfg.img_size) and first.crop_scale == (0.9, 1.0)
        assert not any(type(t) in (LoadImage, RandomResizedCrop) for t in pipeline.transforms)
        np.random.seed(0)
        item = pipeline(dict(img_bytes=_photo(1024, 768, 'RGB', 'JPEG'), text='一只猫', image_id=1))
        assert item['inputs'].shape == (3, cfg.img_size, cfg.img_size)


@pytest.mark.parametrize('name', NAMES)
def test_eval_pipelines_keep_the_official_pixels(name, vocab_file):
    """Pixel for pixel the official evaluation: Pillow decode, bicubic resize (own mode, then RGB; zero-shot:
    RGB first), for JPEGs (colour and grey) and PNGs (RGB, RGBA, palette)."""
    cfg = Config.fromfile(str(CONFIGS / name))
    images = [_photo(1024, 768, 'RGB', 'JPEG'), _photo(500, 375, 'L', 'JPEG'), _photo(640, 480, 'RGB', 'PNG'),
              _photo(300, 200, 'RGBA', 'PNG'), _photo(320, 240, 'P', 'PNG')]
    for loader in ('val_dataloader', 'test_dataloader'):
        for dataset in _datasets(cfg.to_dict()[loader]['dataset']):
            pipeline = Compose(local_vocab(dataset['pipeline'], vocab_file))
            for data in images:
                img = Image.open(io.BytesIO(data))
                if name in ZERO_SHOT:
                    img = img.convert('RGB')
                want = np.asarray(img.resize((cfg.img_size, cfg.img_size), Image.BICUBIC).convert('RGB'))
                got = pipeline(dict(img_bytes=data, image_id=1))['inputs'].permute(1, 2, 0).numpy()
                np.testing.assert_array_equal(got, want, err_msg=f'{loader}: {img.format} {img.mode}')


def test_train_pipeline_errors_name_the_file_and_line(tmp_path, vocab_file):
    images = image_bytes()
    images[2] = images[2][: len(images[2]) // 2]  # a JPEG cut in half
    write_official(tmp_path, images=images)
    ds_cfg = local_vocab(Config.fromfile(str(CONFIGS / 'muge.py')).to_dict()['train_dataloader']['dataset'],
                         vocab_file)
    ds = DATASETS.build(dict(ds_cfg, data_root=str(tmp_path)))
    assert ds[1]['inputs'].shape == (3, 224, 224)
    with pytest.raises(BadSampleError, match=r'train_imgs\.tsv line 2 \(image_id 2\): corrupt or truncated image'):
        ds[2]
