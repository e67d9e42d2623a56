"""tools/model_converters/wise_ft.py: exact end points, the mean, architecture check, alpha sweep plot."""
import importlib.util
import json
import re

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.datasets import make_demo_classes
from cnclip_mm.registry import MODELS
from tests.conftest import REPO, TINY_MODEL

spec = importlib.util.spec_from_file_location('wise_ft_tool', REPO / 'tools' / 'model_converters' / 'wise_ft.py')
wise_ft = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wise_ft)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Two differently initialised demo-sized models (own format) and a zero-shot eval config."""
    tmp = tmp_path_factory.mktemp('wise_ft')
    data = make_demo_classes(str(tmp / 'data'), train_per_class=1, test_per_class=2)
    text = Config.fromfile(str(REPO / 'configs' / 'demo' / 'finetune_classes.py')).pretty_text
    cfg = Config.fromstring(re.sub(r"'[^']*data/demo_classes", repr(data)[:-1], text), '.py')
    cfg.log_level = 'WARNING'
    config = str(tmp / 'eval.py')
    cfg.dump(config)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
        model.init_weights()
        paths.append(str(tmp / f'seed{seed}.pth'))
        torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=Config(dict(model=cfg.model)).pretty_text)),
                   paths[-1])
    return tmp, config, paths


def _weights(path):
    return torch.load(path, weights_only=True)['state_dict']


def test_end_points_exact_and_mean(setup):
    tmp, _, (zs, ft) = setup
    for alpha, ref in ((0.0, zs), (1.0, ft)):
        out = wise_ft.main([zs, ft, '--alpha', str(alpha), '--out', str(tmp / f'a{alpha}.pth')])
        got, want = _weights(out), _weights(ref)
        assert set(got) == set(want)
        assert all(torch.equal(got[k], want[k]) for k in want)  # bit for bit
    got = _weights(wise_ft.main([zs, ft, '--alpha', '0.5', '--out', str(tmp / 'a0.5.pth')]))
    a, b = _weights(zs), _weights(ft)
    assert all(torch.equal(got[k], ((a[k].double() + b[k].double()) / 2).to(a[k].dtype)) for k in a)
    assert not torch.equal(got['text_projection'], a['text_projection'])


def test_mismatched_architectures(setup, tmp_path):
    _, _, (zs, _) = setup
    torch.manual_seed(0)
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict=MODELS.build(dict(TINY_MODEL)).state_dict()), other)
    with pytest.raises(ValueError, match='same architecture; .*shape mismatches'):
        wise_ft.main([zs, str(other), '--alpha', '0.5', '--out', str(tmp_path / 'x.pth')])
    with pytest.raises(ValueError, match=r'alpha must be in \[0, 1\]'):
        wise_ft.main([zs, zs, '--alpha', '1.5', '--out', str(tmp_path / 'x.pth')])


def test_alpha_sweep_evaluates_and_plots(setup, tmp_path):
    _, config, (zs, ft) = setup
    results = wise_ft.main([zs, ft, '--alphas', '0,0.5,1', '--eval', config, '--out', str(tmp_path)])
    assert sorted(results) == [0.0, 0.5, 1.0]
    assert all('zeroshot/top1' in m for m in results.values())
    png = tmp_path / 'wise_ft.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 5000
    assert set(json.loads((tmp_path / 'wise_ft.json').read_text())) == {'0', '0.5', '1'}
    assert torch.equal(_weights(tmp_path / 'alpha_1.00.pth')['logit_scale'], _weights(ft)['logit_scale'])
