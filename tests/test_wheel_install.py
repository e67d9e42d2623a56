"""A wheel is the full product: built from a copy of the sources, installed into a fresh folder, used from
another folder in a fresh process: the model index lists the releases, configs come from the package."""
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

USE = textwrap.dedent('''
    import os, sys, torch
    import cnclip_mm
    from pathlib import Path
    assert Path(cnclip_mm.__file__).is_relative_to(sys.argv[1]), cnclip_mm.__file__
    from cnclip_mm.models.zoo import get_model, list_models, model_info
    packaged = Path(sys.argv[1], 'cnclip_mm', '.mim', 'configs')
    assert {'cn-clip_rn50', 'cn-clip_vit-h-14', 'qa-clip_rn50'} <= set(list_models()), list_models()
    assert Path(model_info('cn-clip_rn50')['Config']).is_relative_to(packaged)
    # A tiny model by name, its config inheriting a packaged base, loaded from a local weights file.
    Path('index.yml').write_text('Models:\\n  - Name: tiny-wheel\\n    Config: ' + str(packaged) +
                                 '/_base_/models/tiny.py\\n    Weights: https://example.invalid/w.pt\\n')
    os.environ['CNCLIP_MODEL_INDEX'] = str(Path('index.yml').resolve())
    torch.manual_seed(0)
    first = get_model('tiny-wheel')
    torch.save(dict(state_dict=first.state_dict()), 'tiny.pth')
    model = get_model('tiny-wheel', pretrained='tiny.pth')
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), model.state_dict().values()))
    print(model.extract_text_feat(['一只猫']).shape)
''')


def test_wheel_lists_and_loads_models_by_name(tmp_path):
    src = tmp_path / 'src'
    for name in ('setup.py', 'pyproject.toml', 'README.md'):
        shutil.copy(REPO / name, src / name if src.exists() else (src.mkdir() or src / name))
    for name in ('cnclip_mm', 'configs', 'requirements'):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns('__pycache__', '.mim'))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '-w', str(tmp_path / 'dist'), str(src)],
                   check=True, cwd=tmp_path)
    wheel = next((tmp_path / 'dist').glob('cnclip_mm-*.whl'))
    assert 'cnclip_mm/.mim/configs/metafile.yml' in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / 'site'
    subprocess.run([*pip, 'install', '--no-deps', '--target', str(site), str(wheel)], check=True)
    work = tmp_path / 'elsewhere'
    work.mkdir()
    out = subprocess.run([sys.executable, '-c', USE, str(site)], cwd=work, capture_output=True, text=True,
                         env={'PATH': '/usr/bin:/bin', 'PYTHONPATH': str(site), 'HOME': str(tmp_path),
                              'CNCLIP_HOME': str(tmp_path / 'cache')})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('torch.Size([1, 64])')
    assert not (work / 'data').exists() and not (work / 'work_dirs').exists()
