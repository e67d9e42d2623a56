"""ImageTextJsonlDataset: image folder + {"image", "caption"} lines."""
import numpy as np
from data_writers import decode, make_image, pipeline, write_jsonl_set
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from cnclip_mm.registry import DATASETS


def build(root, **kwargs):
    cfg = dict(type='ImageTextJsonlDataset', data_root=str(root), pipeline=pipeline(8))
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_training_items(tmp_path):
    write_jsonl_set(tmp_path)
    ds = build(tmp_path, pipeline=[dict(type='LoadImage'), dict(type='PackCLIPInputs')])
    metas = [ds[i]['data_samples'].metainfo for i in range(len(ds))]
    assert [(m['text_id'], m['image_id'], m['text']) for m in metas] == [
        (0, 0, '一只猫'), (1, 1, '小狗'), (2, 1, '一只小狗在跑'), (3, 0, '猫在睡觉')]
    assert metas[1]['img_path'].endswith('images/sub/b.jpg')
    assert np.array_equal(ds[0]['inputs'].permute(1, 2, 0).numpy(), decode(make_image(1)))


def test_test_mode_links(tmp_path):
    write_jsonl_set(tmp_path)
    ds = build(tmp_path, test_mode=True)
    assert len(ds) == 2 + 4
    assert [ds[i]['data_samples'].image_id for i in range(2)] == [0, 1]
    assert [ds[i]['data_samples'].gt_image_ids for i in range(2, 6)] == [[0], [1], [1], [0]]
    assert all(ds[i]['inputs'] is None for i in range(2, 6))


def test_two_worker_dataloader(tmp_path):
    write_jsonl_set(tmp_path)
    loader = DataLoader(build(tmp_path), batch_size=2, num_workers=2, collate_fn=pseudo_collate)
    assert sorted(s.text_id for b in loader for s in b['data_samples']) == [0, 1, 2, 3]
