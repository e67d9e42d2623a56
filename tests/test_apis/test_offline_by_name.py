"""Offline with only the weights file: by name and by path no second download (the shipped vocab is used);
the preflight of tools/test.py lists unfetchable weights with the missing data; download messages say what
is true."""
import socket
import sys
from pathlib import Path

import pytest
import torch

from cnclip_mm.apis import get_model, list_models
from cnclip_mm.engine.preflight import PreflightError
from cnclip_mm.models.converters import mm_to_official
from cnclip_mm.models.tokenizer import SHIPPED_VOCAB
from cnclip_mm.models.zoo import model_info
from cnclip_mm.utils import download as download_module
from cnclip_mm.utils.download import DownloadError, cached_path, download

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / 'test_evaluation'))
from eval_fixtures import load_tool  # noqa: E402

NAME = 'cn-clip_tiny_offline-test'


def _dead_url(path: str) -> str:
    """A loopback address where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}{path}'


@pytest.fixture
def offline_index(tmp_path, monkeypatch):
    """An index entry like a release (a config without vocab_file, no Vocab) whose server is gone, a local
    official-format weights file, an empty cache and a urlopen that fails the test if called."""
    monkeypatch.setenv('CNCLIP_HOME', str(tmp_path / 'cache'))
    config = tmp_path / 'tiny.py'
    config.write_text(f"_base_ = [{str(REPO / 'configs/_base_/models/tiny.py')!r}]\n", encoding='utf-8')
    url = _dead_url('/weights/clip_cn_tiny.pt')
    index = tmp_path / 'index.yml'
    index.write_text(f'Models:\n  - Name: {NAME}\n    Config: tiny.py\n    Weights: {url}\n', encoding='utf-8')
    monkeypatch.setenv('CNCLIP_MODEL_INDEX', str(index))
    torch.manual_seed(0)
    model = get_model(NAME)
    weights = tmp_path / 'clip_cn_tiny.pt'
    torch.save(dict(epoch=1, state_dict=mm_to_official(model.state_dict())), weights)
    return dict(url=url, weights=weights, model=model, config=config)


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f'network access: {args[:1]}')
    monkeypatch.setattr(download_module.urllib.request, 'urlopen', refuse)


def _check(model, expected):
    assert model.tokenizer.vocab_file == SHIPPED_VOCAB
    assert model.tokenizer(['一只猫']).shape == (1, 32)
    for key, value in expected['model'].state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_by_path_and_by_name_need_only_the_weights(offline_index, monkeypatch):
    _no_network(monkeypatch)
    _check(get_model(NAME, pretrained=str(offline_index['weights'])), offline_index)
    target = cached_path(offline_index['url'])  # the file put where the download error says
    target.parent.mkdir(parents=True)
    target.write_bytes(offline_index['weights'].read_bytes())
    _check(get_model(NAME, pretrained=True), offline_index)


def test_released_models_use_the_shipped_vocab():
    for name in list_models():
        entry = model_info(name)
        assert entry.get('Files') or not entry.get('Vocab'), name  # HF folders carry their own vocab


def test_preflight_lists_unfetchable_weights_with_missing_data(offline_index, tmp_path):
    cfg = tmp_path / 'zs.py'
    cfg.write_text(f"_base_ = [{str(REPO / 'configs/zeroshot_elevater.py')!r}]\n"
                   f"test_dataloader = dict(dataset=dict(data_root={str(tmp_path / 'no_data')!r}))\n",
                   encoding='utf-8')
    with pytest.raises(PreflightError) as err:
        load_tool('test.py').main([str(cfg), NAME, '--work-dir', str(tmp_path / 'work')])
    message = str(err.value)
    assert '2 input(s)' in message and str(tmp_path / 'no_data') in message
    assert offline_index['url'] in message and str(cached_path(offline_index['url'])) in message


def test_download_messages_say_what_is_true(offline_index, zoo):
    with pytest.raises(DownloadError) as err:  # refused, nothing partial: nothing to resume
        download(offline_index['url'], progress=False)
    assert 'resumed' not in str(err.value) and str(cached_path(offline_index['url'])) in str(err.value)
    data = bytearray(zoo['data'])
    data[100] ^= 0xFF
    zoo['server'].files[f'/weights/{zoo["name"]}'] = bytes(data)
    with pytest.raises(DownloadError) as err:  # a bad download is deleted: no file left to delete by hand
        download(zoo['url'], progress=False)
    assert 'deleted' in str(err.value) and 'Delete it' not in str(err.value)
    assert not zoo['cached'].with_name(zoo['cached'].name + '.part').exists()
