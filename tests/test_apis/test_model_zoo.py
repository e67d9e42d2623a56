"""Models by name: the index, and weights downloaded once from a loopback server, verified and cached."""
import os
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.apis import get_model, list_models
from cnclip_mm.models import zoo as model_zoo
from cnclip_mm.models.zoo import model_info, register_models
from cnclip_mm.registry import RUNNERS
from cnclip_mm.utils.download import DownloadError, download

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / 'test_evaluation'))
from eval_fixtures import load_tool, tiny_test_config, write_elevater  # noqa: E402
from zoo_fixtures import TINY_NAME  # noqa: E402


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_index_lists_every_release():
    names = list_models()
    official = ['cn-clip_rn50', 'cn-clip_vit-b-16', 'cn-clip_vit-l-14', 'cn-clip_vit-l-14-336', 'cn-clip_vit-h-14']
    assert set(official) <= set(names)
    assert list_models('cn-clip_*_zeroshot-cls_cifar100') == [
        'cn-clip_resnet50_zeroshot-cls_cifar100', 'cn-clip_vit-base-p16_zeroshot-cls_cifar100',
        'cn-clip_vit-huge-p14_zeroshot-cls_cifar100', 'cn-clip_vit-large-p14_zeroshot-cls_cifar100']
    assert len(list_models('OFA-Sys/*')) == 4 and len(list_models('qa-clip*')) == 3
    assert model_info('ViT-L-14-336')['Name'] == 'cn-clip_vit-l-14-336'  # official load_from_name names
    assert model_info('RN50')['Weights'].endswith('/checkpoints/clip_cn_rn50.pt')
    for name in names:
        entry = model_info(name)
        assert Path(entry['Config']).is_file(), name
        assert entry['Weights'].startswith('https://'), name
    with pytest.raises(KeyError, match='no model named'):
        model_info('cn-clip_vit-z-99')


def test_download_verify_cache_then_offline(zoo):
    model = get_model(TINY_NAME, pretrained=True, progress=False)
    _same_weights(model, zoo['model'])
    assert zoo['cached'].read_bytes() == zoo['data']
    zoo['server'].stop()
    again = get_model('tiny-test', pretrained=True)  # alias; from the cache, server gone
    _same_weights(again, zoo['model'])
    assert len(zoo['server'].requests) == 1
    assert model.tokenizer(['猫']).shape == (1, 32)  # the index's Vocab was used

    data = bytearray(zoo['data'])
    data[len(data) // 2] ^= 0xFF
    zoo['cached'].write_bytes(bytes(data))
    with pytest.raises(DownloadError, match='SHA-256'):
        get_model(TINY_NAME, pretrained=True)


def test_offline_without_file_names_url_and_place(zoo):
    zoo['server'].stop()
    with pytest.raises(DownloadError) as err:
        get_model(TINY_NAME, pretrained=True)
    assert zoo['url'] in str(err.value) and str(zoo['cached']) in str(err.value)


def test_resume_partial_download(zoo):
    part = zoo['cached'].with_name(zoo['cached'].name + '.part')
    part.parent.mkdir(parents=True)
    half = len(zoo['data']) // 2
    part.write_bytes(zoo['data'][:half])
    path = download(zoo['url'], progress=True)
    assert Path(path).read_bytes() == zoo['data'] and not part.exists()
    assert zoo['server'].requests == [(f'/weights/{zoo["name"]}', f'bytes={half}-')]


def test_hash_mismatch_on_download_keeps_nothing(zoo):
    data = bytearray(zoo['data'])
    data[100] ^= 0xFF
    zoo['server'].files[f'/weights/{zoo["name"]}'] = bytes(data)
    with pytest.raises(DownloadError, match='SHA-256'):
        download(zoo['url'], progress=False)
    assert not zoo['cached'].exists() and not zoo['cached'].with_name(zoo['cached'].name + '.part').exists()


def test_register_models_and_config_paths(zoo, monkeypatch):
    monkeypatch.setattr(model_zoo, '_registered', [])
    names = register_models(os.environ['CNCLIP_MODEL_INDEX'])
    assert names == [TINY_NAME] and TINY_NAME in list_models('*tiny*')
    with pytest.raises(ValueError, match='pretrained=True needs a model name'):
        get_model(model_info(TINY_NAME)['Config'], pretrained=True)
    by_url = get_model(model_info(TINY_NAME)['Config'], pretrained=zoo['url'])  # a config plus a URL
    _same_weights(by_url, zoo['model'])


def test_tools_test_and_load_from_take_url(zoo, tmp_path, vocab_file):
    root = write_elevater(str(tmp_path / 'elevater'), ['猫', '狗'])  # a small zero-shot set
    cfg_file = tiny_test_config(tmp_path, 'zeroshot_elevater.py', root, vocab_file, retrieval=False)
    test_tool = load_tool('test.py')
    by_url = test_tool.main([cfg_file, zoo['url'], '--work-dir', str(tmp_path / 'w1')])
    assert set(by_url) == {'zeroshot/top1', 'zeroshot/top5'}

    cfg = Config.fromfile(cfg_file)
    cfg.load_from = zoo['url']
    cfg.work_dir = str(tmp_path / 'w4')
    runner = RUNNERS.build(cfg)
    assert runner.test() == by_url  # the runner loaded the same weights through load_from
    _same_weights(runner.model, zoo['model'])
