"""Installing never replaces a user's torch: ranges in setup.py, exact pins only in the constraints file.

The pins in constraints.txt are the versions CI tested; the installed packages only have to fall in the
ranges of runtime.txt, so a CUDA build (``2.13.0+cu130``) or another torch the range allows passes.
"""
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _lines(name: str):
    text = (REPO / 'requirements' / name).read_text(encoding='utf-8')
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith('#')]


def _runtime_requirement(name: str) -> Requirement:
    matches = [Requirement(line) for line in _lines('runtime.txt') if Requirement(line).name.lower() == name]
    assert len(matches) == 1, f'requirements/runtime.txt names {name} {len(matches)} times'
    return matches[0]


def installed_version_allowed(requirement: Requirement, version: str) -> bool:
    """Whether an installed ``version`` satisfies ``requirement`` as pip judges an installed package.

    Local labels (``+cu130``, ``+cpu``) are ignored by the range comparison (PEP 440), and an installed
    pre-release (a nightly) counts when the range allows it: pip keeps it rather than replacing it.
    """
    return requirement.specifier.contains(Version(version), prereleases=True)


@pytest.mark.parametrize('version, allowed', [
    ('2.13.0', True),
    ('2.13.0+cu130', True),
    ('2.13.0+cpu', True),
    ('2.4.0', True),
    ('2.5.1+cu121', True),
    ('2.14.0.dev20260101+cu130', True),
    ('2.3.1', False),
    ('2.3.1+cu121', False),
    ('2.4.0rc1', False),
    ('1.13.1+cu117', False),
])
def test_the_torch_rule_accepts_builds_in_the_range_and_rejects_older_ones(version, allowed):
    assert installed_version_allowed(Requirement('torch>=2.4'), version) is allowed


def test_install_requires_are_ranges_and_the_constraints_satisfy_them():
    requirements = [Requirement(line) for line in _lines('runtime.txt') + _lines('tests.txt')]
    assert not any(s.operator in ('==', '===') for r in requirements for s in r.specifier)
    pins = {}
    for line in _lines('constraints.txt'):
        name, version = re.fullmatch(r'([A-Za-z0-9_.-]+)==([^\s;]+)', line).groups()
        pins[name.lower()] = Version(version)
    for req in requirements:
        assert req.name.lower() in pins, f'{req.name} has no tested pin in constraints.txt'
        assert req.specifier.contains(pins[req.name.lower()]), (req, pins[req.name.lower()])


def test_the_installed_torch_is_one_the_range_allows():
    import torch

    requirement = _runtime_requirement('torch')
    assert installed_version_allowed(requirement, torch.__version__), (
        f'installed torch {torch.__version__} is outside requirements/runtime.txt ({requirement})')


def test_quick_start_and_ci_install_with_the_constraints():
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    installs = [line for line in readme.splitlines() if line.startswith('pip install')]
    assert len(installs) == 2 and all('-c requirements/constraints.txt' in line for line in installs)
    ci = (REPO / '.ci' / 'run').read_text(encoding='utf-8')
    assert 'pip install -c requirements/constraints.txt -e ".[tests]"' in ci
