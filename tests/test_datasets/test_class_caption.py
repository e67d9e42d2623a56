"""Classification set -> image-text pairs: captions from class names and templates, labels kept.

configs/demo/finetune_classes*.py are run end to end in tests/test_engine/test_ema.py."""
import pytest

from cnclip_mm.datasets import ClassCaptionDataset, make_demo_classes
from cnclip_mm.datasets.demo_classes import CLASS_TEMPLATES, demo_class_names
from cnclip_mm.registry import DATASETS


@pytest.fixture(scope='module')
def demo_classes(tmp_path_factory):
    return make_demo_classes(str(tmp_path_factory.mktemp('demo_classes')), train_per_class=4, test_per_class=2)


def test_captions_labels_and_random_templates(demo_classes):
    pipeline = [dict(type='LoadImage'), dict(type='ResizeExact', scale=32),
                dict(type='TokenizeText', tokenizer=dict(type='ChineseTokenizer',
                                                         vocab_file=f'{demo_classes}/vocab.txt')),
                dict(type='PackCLIPInputs')]
    ds = DATASETS.build(dict(type='ClassCaptionDataset', templates=f'{demo_classes}/templates.txt',
                             dataset=dict(type='DemoClassesDataset', data_root=demo_classes, split='train'),
                             pipeline=pipeline))
    assert len(ds) == 40 and ds.metainfo['classes'] == demo_class_names()
    item = ds[5]
    sample = item['data_samples']
    label = int(sample.gt_label)
    assert label == 1 and sample.image_id.endswith('train/001/0001.png')
    assert sample.text in [t.format(demo_class_names()[label]) for t in CLASS_TEMPLATES]
    assert item['inputs'].shape == (3, 32, 32) and (sample.text_ids != 100).all()  # no [UNK]
    texts = {ds[5]['data_samples'].text for _ in range(40)}
    assert len(texts) > 1  # a template drawn per fetch


def test_bad_input(demo_classes):
    source = DATASETS.build(dict(type='DemoClassesDataset', data_root=demo_classes, split='test'))
    with pytest.raises(ValueError, match='label 9, outside the 2 class names'):
        ClassCaptionDataset(source, templates=['{}'], classes=['a', 'b']).get_data_info(18)
    with pytest.raises(FileNotFoundError, match='templates'):
        ClassCaptionDataset(source, templates='no/such/templates.txt')
