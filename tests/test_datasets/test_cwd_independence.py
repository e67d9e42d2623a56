"""Nothing depends on the current folder: the demo configs' data and vocab paths are anchored at the config
files, the Python API tokenises from anywhere, and a missing demo data_root is an error naming the path
unless generating it is asked for."""
import shutil
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from cnclip_mm.apis import init_model
from cnclip_mm.datasets.demo import demo_vocab
from cnclip_mm.engine.preflight import PreflightError
from cnclip_mm.registry import DATASETS
from cnclip_mm.utils.tokenizer_cfg import share_tokenizer

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import load_tool  # noqa: E402

DEMO_CONFIGS = sorted(REPO.glob('configs/demo/*.py')) + sorted(REPO.glob('configs/long_text/demo_*.py'))


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    folder = tmp_path / 'elsewhere'
    folder.mkdir()
    monkeypatch.chdir(folder)
    yield folder
    assert sorted(p.name for p in folder.iterdir()) == [], 'a run wrote into the current folder'


@pytest.mark.parametrize('config', DEMO_CONFIGS, ids=lambda p: p.stem)
def test_demo_paths_are_anchored_at_the_repository(config, elsewhere):
    cfg = share_tokenizer(Config.fromfile(str(config)).to_dict())
    data_paths = [s for s in _strings(cfg) if 'data/demo' in s]
    assert data_paths, config
    for path in data_paths:
        assert Path(path).is_absolute() and Path(path).resolve().is_relative_to(REPO / 'data'), path


def test_api_outside_the_repository_tokenises(tmp_path, elsewhere):
    project = tmp_path / 'project'  # a copy of the configs (as a wheel carries them) with its demo vocab
    shutil.copytree(REPO / 'configs', project / 'configs')
    (project / 'data' / 'demo').mkdir(parents=True)
    (project / 'data' / 'demo' / 'vocab.txt').write_text('\n'.join(demo_vocab()) + '\n', encoding='utf-8')
    model = init_model(str(project / 'configs' / 'demo' / 'stage2.py'))
    assert model.tokenizer.vocab_file == str(project / 'data' / 'demo' / 'vocab.txt')
    ids = model.tokenize(['红色圆形'])
    assert ids.shape == (1, 32) and int((ids > 0).sum()) == 6  # [CLS] 4 chars [SEP]


def test_missing_demo_root_is_an_error_naming_it(tmp_path, elsewhere):
    typo = tmp_path / 'dmeo'
    with pytest.raises(FileNotFoundError, match=str(typo)):
        DATASETS.build(dict(type='DemoImageTextDataset', data_root=str(typo), split='test', pipeline=[]))
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')  # only the preflight runs
    with pytest.raises(PreflightError, match=str(typo)):
        load_tool('test.py').main([str(REPO / 'configs/demo/stage2.py'), str(ckpt), '--cfg-options',
                                   f'test_dataloader.dataset.data_root={typo}',
                                   'test_dataloader.dataset.generate_if_missing=False'])
    assert not typo.exists()
