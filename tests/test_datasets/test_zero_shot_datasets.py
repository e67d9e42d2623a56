"""CIFAR100Dataset and ImageFolderZeroShotDataset, including wrong layouts."""
import pickle

import numpy as np
import pytest
from data_writers import decode, make_image, write_cifar

from cnclip_mm.datasets import CIFAR100_CHINESE
from cnclip_mm.registry import DATASETS

PIPE = [dict(type='LoadImage'), dict(type='PackCLIPInputs')]


def test_cifar100_items_and_classes(tmp_path):
    write_cifar(tmp_path, n=5)
    ds = DATASETS.build(dict(type='CIFAR100Dataset', data_root=str(tmp_path), split='test', pipeline=PIPE))
    with open(tmp_path / 'cifar-100-python' / 'test', 'rb') as f:
        raw = pickle.load(f, encoding='bytes')
    assert len(ds) == 5
    assert ds.metainfo['classes'] == CIFAR100_CHINESE and len(set(CIFAR100_CHINESE)) == 100
    for i in range(5):
        out = ds[i]
        assert out['data_samples'].gt_label.tolist() == [raw[b'fine_labels'][i]]
        expected = raw[b'data'][i].reshape(3, 32, 32)  # channel planes, as stored
        assert np.array_equal(out['inputs'].numpy(), expected)
    # the nested folder itself works as data_root too
    ds2 = DATASETS.build(dict(type='CIFAR100Dataset', data_root=str(tmp_path / 'cifar-100-python'),
                              split='train', pipeline=PIPE))
    assert len(ds2) == 5


def test_cifar100_wrong_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DATASETS.build(dict(type='CIFAR100Dataset', data_root=str(tmp_path / 'nope')))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='cifar-100-python layout'):
        DATASETS.build(dict(type='CIFAR100Dataset', data_root=str(tmp_path / 'empty')))
    write_cifar(tmp_path / 'c10', names=['airplane', 'automobile'])
    with pytest.raises(ValueError, match='fine_label_names are not the 100'):
        DATASETS.build(dict(type='CIFAR100Dataset', data_root=str(tmp_path / 'c10')))
    write_cifar(tmp_path / 'nolabels')
    with open(tmp_path / 'nolabels' / 'cifar-100-python' / 'test', 'wb') as f:
        pickle.dump({b'data': np.zeros((2, 3072), np.uint8), b'labels': [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match="no 'fine_labels' entry"):
        DATASETS.build(dict(type='CIFAR100Dataset', data_root=str(tmp_path / 'nolabels')))


def test_cifar_pickle_with_code_is_refused(tmp_path):
    write_cifar(tmp_path)
    with open(tmp_path / 'cifar-100-python' / 'test', 'wb') as f:
        pickle.dump({b'data': pickle.loads, b'fine_labels': []}, f, protocol=2)
    with pytest.raises(ValueError, match='refusing to load global'):
        DATASETS.build(dict(type='CIFAR100Dataset', data_root=str(tmp_path)))


def write_elevater(root):
    (root / 'label_cn.txt').write_text('猫\n狗\n汽车\n', encoding='utf-8')
    for cls, names in ((0, ['a.jpg', 'b.png']), (2, ['c.jpg'])):
        folder = root / 'test' / f'{cls:03d}'
        folder.mkdir(parents=True)
        for k, name in enumerate(names):
            (folder / name).write_bytes(make_image(cls * 10 + k, fmt='PNG' if name.endswith('png') else 'JPEG'))
    (root / 'test' / '000' / 'notes.txt').write_text('not an image')
    return root


def test_image_folder_zero_shot(tmp_path):
    write_elevater(tmp_path)
    ds = DATASETS.build(dict(type='ImageFolderZeroShotDataset', data_root=str(tmp_path), pipeline=PIPE))
    assert ds.metainfo['classes'] == ['猫', '狗', '汽车']
    assert len(ds) == 3
    assert [ds[i]['data_samples'].gt_label.item() for i in range(3)] == [0, 0, 2]
    assert np.array_equal(ds[1]['inputs'].permute(1, 2, 0).numpy(), decode(make_image(1, fmt='PNG')))


def test_image_folder_bad_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match='label_cn.txt'):
        DATASETS.build(dict(type='ImageFolderZeroShotDataset', data_root=str(tmp_path)))
    write_elevater(tmp_path)
    (tmp_path / 'test' / '007').mkdir()
    with pytest.raises(ValueError, match="indices 0..2.*'007'"):
        DATASETS.build(dict(type='ImageFolderZeroShotDataset', data_root=str(tmp_path)))
