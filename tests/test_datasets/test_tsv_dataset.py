"""ImageTextTSVDataset on tiny official TSV/jsonl files."""
import numpy as np
import torch
from data_writers import TEXTS, decode, image_bytes, pipeline, write_official
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from cnclip_mm.registry import DATASETS


def build(root, **kwargs):
    cfg = dict(type='ImageTextTSVDataset', data_root=str(root), split='train', pipeline=pipeline(8))
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_training_items_are_pairs(tmp_path):
    write_official(tmp_path)
    ds = build(tmp_path, pipeline=[dict(type='LoadImage'), dict(type='PackCLIPInputs')])
    assert len(ds) == 4
    metas = [ds[i]['data_samples'].metainfo for i in range(4)]
    assert [(m['text_id'], m['image_id']) for m in metas] == [(11, 1), (12, 1), (12, 2), (13, 3)]
    assert metas[1]['text'] == '两只小狗'
    images = image_bytes()
    for i, image_id in enumerate([1, 1, 2, 3]):
        expected = decode(images[image_id])
        out = ds[i]['inputs']
        assert out.dtype == torch.uint8 and out.shape == (3, *expected.shape[:2])
        assert np.array_equal(out.permute(1, 2, 0).numpy(), expected)


def test_test_mode_lists_images_then_texts(tmp_path):
    write_official(tmp_path, split='valid')
    ds = build(tmp_path, split='valid', test_mode=True)
    assert len(ds) == 6
    items = [ds[i] for i in range(6)]
    assert [it['data_samples'].image_id for it in items[:3]] == [1, 2, 3]
    assert all(it['inputs'] is not None and 'text_id' not in it['data_samples'] for it in items[:3])
    texts = items[3:]
    assert all(it['inputs'] is None for it in texts)
    assert [(t['data_samples'].text_id, t['data_samples'].gt_image_ids) for t in texts] == \
        [(t, ids) for t, _, ids in TEXTS]


def test_index_holds_offsets_not_images(tmp_path):
    big = {i: bytes(200_000) for i in range(1, 4)}  # payloads never parsed at load
    write_official(tmp_path, images=big)
    ds = build(tmp_path, pipeline=[])
    tsv_size = (tmp_path / 'train_imgs.tsv').stat().st_size
    assert ds.data_bytes.nbytes < tsv_size / 100
    info = ds.get_data_info(2)
    assert info['image_id'] == 2 and isinstance(info['img_b64'], bytes) and len(info['img_b64']) > 200_000


def test_two_worker_dataloader(tmp_path, vocab_file):
    write_official(tmp_path)
    ds = build(tmp_path, pipeline=pipeline(8, vocab_file))
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=pseudo_collate)
    seen = []
    for batch in loader:
        assert len(batch['inputs']) == 2 and batch['inputs'][0].shape == (3, 8, 8)
        seen += [(s.text_id, s.image_id, int(s.text_ids[0])) for s in batch['data_samples']]
    assert sorted(seen) == [(11, 1, 101), (12, 1, 101), (12, 2, 101), (13, 3, 101)]
