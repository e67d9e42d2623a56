"""One read-only LMDB environment per path per process.

py-lmdb refuses to open a path twice in one process, and a forked DataLoader worker inherits
the parent's open environments (reusable there: read-only, lock-free), so environments are
cached by path and shared by every dataset reading that path.
"""
import os.path as osp
from typing import Dict

import lmdb

_ENVS: Dict[str, lmdb.Environment] = {}


def get_env(path: str) -> lmdb.Environment:
    """The cached read-only environment of ``path`` (opened on first use)."""
    key = osp.realpath(path)
    env = _ENVS.get(key)
    if env is None:
        env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False,
                        max_readers=256, subdir=True)
        _ENVS[key] = env
    return env


def release_env(path: str) -> None:
    """Close the cached environment of ``path`` (before writing to it)."""
    env = _ENVS.pop(osp.realpath(path), None)
    if env is not None:
        env.close()
