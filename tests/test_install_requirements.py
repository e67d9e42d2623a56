"""Installing never replaces a user's torch: ranges in setup.py, exact pins only in the constraints file."""
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _lines(name: str):
    text = (REPO / 'requirements' / name).read_text(encoding='utf-8')
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith('#')]


def test_install_requires_are_ranges_and_the_constraints_satisfy_them():
    import torch

    requirements = [Requirement(line) for line in _lines('runtime.txt') + _lines('tests.txt')]
    assert not any(s.operator in ('==', '===') for r in requirements for s in r.specifier)
    pins = {}
    for line in _lines('constraints.txt'):
        name, version = re.fullmatch(r'([A-Za-z0-9_.-]+)==([^\s;]+)', line).groups()
        pins[name.lower()] = Version(version)
    for req in requirements:
        assert req.name.lower() in pins, f'{req.name} has no tested pin in constraints.txt'
        assert req.specifier.contains(pins[req.name.lower()]), (req, pins[req.name.lower()])
    # the pin is the torch this machine runs (local label such as +cpu ignored, as pip does)
    assert Version(torch.__version__).public == str(pins['torch'])


def test_quick_start_and_ci_install_with_the_constraints():
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    installs = [line for line in readme.splitlines() if line.startswith('pip install')]
    assert len(installs) == 2 and all('-c requirements/constraints.txt' in line for line in installs)
    ci = (REPO / '.ci' / 'run').read_text(encoding='utf-8')
    assert 'pip install -c requirements/constraints.txt -e ".[tests]"' in ci
