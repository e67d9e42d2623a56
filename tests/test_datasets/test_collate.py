"""clip_collate: stacked batches that preprocess to what pseudo_collate's do (token ids trimmed to the
longest text, with the same features), in workers too; and ``num_workers='auto'`` resolved by the runner."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from cnclip_mm.cpu import auto_workers, cpu_speed, resolve_auto_workers
from cnclip_mm.datasets import clip_collate, ensure_demo_data
from cnclip_mm.engine import CLIPRunner
from cnclip_mm.models import CLIPDataPreprocessor
from cnclip_mm.registry import DATASETS, MODELS
from cnclip_mm.structures import DataSample
from cnclip_mm.utils import share_tokenizer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def demo_cfg(tmp_path_factory):
    """configs/demo/stage2.py on a demo set generated in a temporary folder."""
    init_default_scope('cnclip_mm')
    root = str(tmp_path_factory.mktemp('demo'))
    ensure_demo_data(root)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'demo', 'stage2.py'))
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.data_root = root
    cfg.tokenizer.vocab_file = osp.join(root, 'vocab.txt')
    return share_tokenizer(cfg)


def _preprocessed(batch):
    return CLIPDataPreprocessor()(batch)['inputs']


def _assert_same_inputs(a, b, multiple=8):
    """``a`` (clip_collate) equals ``b`` (pseudo_collate) but for the padding columns it trimmed."""
    assert a['image_slots'] == b['image_slots'] and a['text_slots'] == b['text_slots']
    for key in ('images', 'text_ids'):
        if a[key] is None or b[key] is None:
            assert a[key] is None and b[key] is None, key
        elif key == 'images':
            assert torch.equal(a[key], b[key]), key
        else:
            kept, full = a[key].shape[1], b[key].shape[1]
            assert kept % multiple == 0 or kept == full, (kept, full)
            assert torch.equal(a[key], b[key][:, :kept]) and not b[key][:, kept:].any()
            assert b[key][:, max(kept - multiple, 0):kept].any()  # no whole round unit of padding kept


def _item(image=None, ids=None, **meta):
    sample = DataSample(metainfo=meta)
    if ids is not None:
        sample.text_ids = torch.tensor(ids)
    return dict(inputs=image, data_samples=sample)


def test_pairs_stack_and_preprocess_like_pseudo_collate(demo_cfg):
    ds = DATASETS.build(demo_cfg.train_dataloader.dataset)
    items = [ds[i] for i in range(6)]
    batch = clip_collate([dict(inputs=it['inputs'], data_samples=it['data_samples'].clone()) for it in items])
    assert batch['inputs'].shape == (6, 3, 64, 64) and batch['inputs'].dtype == torch.uint8
    assert batch['text_ids'].shape[0] == 6 and batch['text_slots'] == list(range(6))
    # the ids live in the batch tensor only; metadata stays with the samples
    assert all('text_ids' not in s for s in batch['data_samples'])
    assert [s.metainfo for s in batch['data_samples']] == [it['data_samples'].metainfo for it in items]
    _assert_same_inputs(_preprocessed(batch), _preprocessed(pseudo_collate(items)))


def test_mixed_image_only_and_text_only_items():
    img = torch.arange(3 * 4 * 4, dtype=torch.uint8).view(3, 4, 4)
    items = [_item(image=img, image_id=1), _item(ids=[101, 5, 102, 0], text_id=7),
             _item(image=img + 1, ids=[101, 6, 6, 102], image_id=2), _item(ids=[101, 9, 102, 0], text_id=8)]
    batch = clip_collate([dict(inputs=i['inputs'], data_samples=i['data_samples'].clone()) for i in items])
    assert isinstance(batch['inputs'], list) and batch['inputs'][1] is None  # not every item has an image
    assert batch['text_slots'] == [1, 2, 3] and batch['text_ids'].tolist()[1] == [101, 6, 6, 102]
    _assert_same_inputs(_preprocessed(batch), _preprocessed(pseudo_collate(items)), multiple=4)
    images_only = clip_collate([_item(image=img), _item(image=img)])
    assert images_only['text_ids'] is None and images_only['text_slots'] == []
    assert _preprocessed(images_only)['text_ids'] is None


def test_unequal_images_stay_a_list_and_unequal_ids_are_an_error():
    items = [_item(image=torch.zeros(3, 4, 4, dtype=torch.uint8)), _item(image=torch.zeros(3, 5, 4, dtype=torch.uint8))]
    assert isinstance(clip_collate(items)['inputs'], list)
    with pytest.raises(ValueError, match=r'token id rows of different lengths \[3, 4\]'):
        clip_collate([_item(ids=[101, 5, 102]), _item(ids=[101, 5, 5, 102])])
    with pytest.raises(ValueError, match=r"batch item 1 is \['img', 'text'\], not the .* of PackCLIPInputs"):
        clip_collate([_item(ids=[101, 5, 102]), dict(img=None, text='x')])


def test_worker_batches_equal_inline_batches(demo_cfg):
    loader = demo_cfg.val_dataloader.to_dict()
    workers = CLIPRunner.build_dataloader(dict(loader, num_workers=2, persistent_workers=False), seed=0)
    inline = CLIPRunner.build_dataloader(
        dict(loader, num_workers=0, persistent_workers=False, collate_fn=dict(type='pseudo_collate')), seed=0)
    pairs = list(zip(workers, inline))
    assert len(pairs) == len(inline) >= 2
    seen = dict(images=0, text_ids=0)
    for a, b in pairs:  # retrieval items: images and texts listed separately, so batches mix them
        inputs = _preprocessed(a)
        _assert_same_inputs(inputs, _preprocessed(b), multiple=loader['collate_fn']['pad_to_multiple_of'])
        for key in seen:
            seen[key] += 0 if inputs[key] is None else len(inputs[key])
    assert seen == dict(images=250, text_ids=250)


def _id_items(lengths, width=52):
    items = []
    for n in lengths:
        ids = [101] + [672 + i for i in range(n - 2)] + [102]
        items.append(_item(ids=ids + [0] * (width - n)))
    return items


def test_trims_padding_to_a_multiple_capped_at_the_context_length():
    items = _id_items([5, 19, 3])
    widths = {multiple: clip_collate(_id_items([5, 19, 3]), pad_to_multiple_of=multiple)['text_ids'].shape[1]
              for multiple in (1, 8, 16, 64)}
    assert widths == {1: 19, 8: 24, 16: 32, 64: 52}  # 64 rounds past the 52 ids of a row: capped
    assert clip_collate(items)['text_ids'].shape == (3, 24)  # default: multiples of 8
    assert clip_collate(_id_items([52, 3]))['text_ids'].shape == (2, 52)  # a caption of the full context
    assert clip_collate(_id_items([7, 3]), pad_token_id=672)['text_ids'].shape == (2, 52)  # 0 is not padding
    with pytest.raises(ValueError, match='pad_to_multiple_of must be >= 1, got 0'):
        clip_collate(_id_items([3]), pad_to_multiple_of=0)


def test_trimmed_batches_give_the_features_of_full_ids(tiny_model_cfg):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg).eval()
    items = _id_items([5, 19, 3, 11])
    full = torch.stack([item['data_samples'].text_ids for item in items])
    with torch.no_grad():
        expect = model.extract_text_feat(full)
        for multiple in (1, 8):
            batch = clip_collate(_id_items([5, 19, 3, 11]), pad_to_multiple_of=multiple)
            assert batch['text_ids'].shape[1] < full.shape[1]
            feats = model(**model.data_preprocessor(batch), mode='tensor')[1]
            torch.testing.assert_close(feats, expect, atol=1e-5, rtol=0)


def test_configs_pass_the_multiple(demo_cfg):
    loader = demo_cfg.val_dataloader.to_dict()
    assert loader['collate_fn'] == dict(type='cnclip_mm.clip_collate', pad_to_multiple_of=1)  # the demo's
    widths = {}
    for multiple in (1, 8):
        built = CLIPRunner.build_dataloader(
            dict(loader, num_workers=0, persistent_workers=False,
                 collate_fn=dict(type='cnclip_mm.clip_collate', pad_to_multiple_of=multiple)), seed=0)
        widths[multiple] = [batch['text_ids'].shape[1] for batch in built if batch['text_ids'] is not None]
    assert widths[1] and all(width < 32 for width in widths[1]) and any(width % 8 for width in widths[1])
    assert all(width % 8 == 0 for width in widths[8])


def test_auto_workers_follow_the_threads(demo_cfg):
    """The demo's ``num_workers='auto'`` loader, built by the runner at 1 and 2 threads (cpu_speed's choice
    inside train / val / test), loads in a worker or inline."""
    assert (auto_workers(1), auto_workers(2), auto_workers(8)) == (1, 0, 0)
    loader = demo_cfg.train_dataloader.to_dict()
    assert loader['num_workers'] == 'auto' and loader['persistent_workers']
    fixed = dict(loader, num_workers=3)
    assert resolve_auto_workers(fixed, threads=1) is fixed  # a number is left alone
    inline = resolve_auto_workers(loader, threads=2)
    assert (inline['num_workers'], inline['persistent_workers']) == (0, False)
    assert loader['num_workers'] == 'auto'  # the config itself is not changed
    for threads, workers in ((1, 1), (2, 0)):
        with cpu_speed(True, threads=threads):
            built = CLIPRunner.build_dataloader(dict(loader, dataset=dict(loader['dataset'], indices=128)), seed=0)
        assert built.num_workers == workers
        batch = next(iter(built))
        assert batch['inputs'].shape == (64, 3, 64, 64) and batch['text_ids'].shape[0] == 64
