"""Zero-shot defaults follow the official protocol: class names, per-dataset prompt sets, warnings."""
import hashlib
import logging
from types import SimpleNamespace

import pytest

from cnclip_mm.datasets.cifar100_classes import CIFAR100_CHINESE
from cnclip_mm.evaluation import ZeroShotClassesHook, load_templates
from cnclip_mm.evaluation.templates import official_templates
from cnclip_mm.models.tokenizer import ChineseTokenizer
from cnclip_mm.utils.text_checks import identical_tokenisations, unk_share


def _digest(lines) -> str:
    return hashlib.sha256('\n'.join(lines).encode('utf-8')).hexdigest()[:16]


# Counts and sha256 (first 16 hex) of '\n'.join(list). Sources: OFA-Sys/Chinese-CLIP
# cn_clip/eval/cvinw_zeroshot_templates.py (commit bed51c6) for openai .. cifar100 and
# cn_clip/eval/imagenet_zeroshot_templates.py for imagenet; {} stands for the class name.
OFFICIAL_TEMPLATE_SETS = {
    'openai': (183, 'e5657fd9fce2044f'),
    'flower': (32, '8b566c431de4f1b1'),
    'food': (21, 'e672d0417c433571'),
    'aircraft': (100, '59cfed3ea0cb00bf'),
    'eurosat': (24, 'd32526bbd79f2931'),
    'country211': (4, 'd2ae10fd8b59a128'),
    'cifar100': (11, '5c7d85fc3c77b66c'),
    'imagenet': (80, 'aca0c24e842acc1d'),
}


@pytest.mark.parametrize('name', sorted(OFFICIAL_TEMPLATE_SETS))
def test_template_sets_equal_the_official_lists(name):
    templates = load_templates(name)
    assert (len(templates), _digest(templates)) == OFFICIAL_TEMPLATE_SETS[name]


def test_openai_set_structure():
    openai = load_templates('openai')
    assert openai[:90] == [t[:-1] for t in openai[90:180]] and all(t.endswith('。') for t in openai[90:180])
    assert openai[180:] == ['一种叫{}的花的照片', '一种叫{}的食物的照片', '{}的卫星照片']
    assert load_templates(None) == openai


def test_official_cifar100_class_names():
    # mmpretrain/datasets/categories.py CIFAR100_CATEGORIES_CN (open-mmlab/mmpretrain d35c778), the list
    # its Chinese CLIP zero-shot configs use; 13 names differ from this project's former translation.
    assert len(CIFAR100_CHINESE) == 100 and len(set(CIFAR100_CHINESE)) == 100
    assert _digest(CIFAR100_CHINESE) == '9b3c8a77ef009193'
    assert CIFAR100_CHINESE[1] == '水族馆鱼' and CIFAR100_CHINESE[74] == '尖嘴小鼠'


def test_official_template_choice_per_dataset():
    assert official_templates('cifar-100') == 'openai' == official_templates(None)
    assert official_templates('food-101') == 'food'
    assert official_templates('resisc45_clip') == official_templates('eurosat_clip') == 'eurosat'
    assert official_templates('fgvc-aircraft-2013b-variants102') == 'aircraft'


def test_text_checks_on_the_official_names(vocab_file):
    tok = ChineseTokenizer(vocab_file)
    assert identical_tokenisations(tok, CIFAR100_CHINESE) == [('鳐鱼', '鳟鱼')]
    share, with_unk = unk_share(tok, ['猫', '鳐鱼'])
    assert share == pytest.approx(1 / 3) and with_unk == ['鳐鱼']


class _Model:
    def __init__(self):
        self.tokenizer = ChineseTokenizer()
        self.calls = []

    def set_zeroshot_classes(self, classes, templates, batch_size):
        self.calls.append((list(classes), list(templates)))


def _runner(model, data_root, classes):
    dataset = SimpleNamespace(data_root=data_root, metainfo=dict(classes=classes))
    loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
    return SimpleNamespace(model=model, test_loop=loop, val_loop=loop,
                           logger=logging.getLogger('official_zeroshot_test'))


def test_hook_uses_the_official_set_of_the_dataset_and_warns_once(caplog):
    model = _Model()
    hook = ZeroShotClassesHook()
    with caplog.at_level(logging.WARNING, logger='official_zeroshot_test'):
        hook.before_test_epoch(_runner(model, 'data/cifar100', list(CIFAR100_CHINESE)))
        hook.before_test_epoch(_runner(model, 'data/cifar100', list(CIFAR100_CHINESE)))
    warnings = [r.getMessage() for r in caplog.records if '鳐鱼 / 鳟鱼' in r.getMessage()]
    assert len(warnings) == 1 and '[UNK] 鱼' in warnings[0]
    assert model.calls[0][1] == load_templates('openai')
    ZeroShotClassesHook().before_test_epoch(_runner(model, '/x/elevater/food-101/', ['饺子', '面条']))
    assert model.calls[-1][1] == load_templates('food')
    ZeroShotClassesHook(templates='cifar100').before_test_epoch(_runner(model, 'data/food-101', ['猫']))
    assert model.calls[-1][1] == load_templates('cifar100')  # other sets stay selectable
