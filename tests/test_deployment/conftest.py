"""Fixtures of the deployment tests: ``zoo`` (a tiny release served on 127.0.0.1, see zoo_fixtures.py)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_apis'))
from zoo_fixtures import zoo  # noqa: E402,F401
