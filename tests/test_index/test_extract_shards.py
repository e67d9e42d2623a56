"""tools/analysis/extract_features.py --shards on 2 gloo ranks (torchrun's env://) writes the same feature set
as 1 process, every id once, and build_index.py ingests it into the index the images give."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnclip_mm.index import ModelMismatchError, open_index
from cnclip_mm.index.feature_shards import MANIFEST, read_feature_shard

REPO = Path(__file__).resolve().parents[2]


def extract_tool():
    sys.path.insert(0, str(REPO / 'tools' / 'analysis'))
    import extract_features
    return extract_features


def features(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.glob('*.npz')):
        ids, feats, _ = read_feature_shard(str(path))
        for i, f in zip(ids, feats):
            assert i not in out, f'{i} twice'
            out[i] = f
    return out


def test_two_ranks_equal_one_process_and_feed_the_index(assets, tmp_path):
    argv = [assets['ckpt'], '--shards', assets['shards'], '--batch-size', '8']
    extract_tool().main(argv + ['--out-dir', str(tmp_path / 'one')])
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # what torchrun gives each rank (env://), without its launcher process
    cmd = [sys.executable, str(REPO / 'tools' / 'analysis' / 'extract_features.py'), *argv, '--out-dir',
           str(tmp_path / 'two'), '--launcher', 'pytorch']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO), WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(port))
    ranks = [subprocess.Popen(cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    errors = [rank.communicate(timeout=600)[1] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], errors[0][-2000:] + errors[1][-2000:]

    one, two = features(tmp_path / 'one'), features(tmp_path / 'two')
    assert sorted(one) == sorted(two) == [f'img{i:03d}.jpg' for i in range(24)]  # none dropped, none twice
    for i in one:
        np.testing.assert_allclose(two[i], one[i], atol=1e-5)
    assert (tmp_path / 'two' / MANIFEST).is_file()

    sys.path.insert(0, str(REPO / 'tools' / 'index'))
    import build_index
    out = str(tmp_path / 'from_features.index')
    build_index.main([assets['ckpt'], str(tmp_path / 'two'), '--out', out, '--no-progress'])
    index = open_index(out)
    assert sorted(index.ids) == sorted(one)
    np.testing.assert_allclose(index.get_vectors(sorted(one)), np.stack([one[i] for i in sorted(one)]), atol=1e-6)
    # the features of a foreign model are refused like its images
    with pytest.raises(ModelMismatchError, match='feature shard'):
        build_index.main([assets['other_ckpt'], str(tmp_path / 'two'), '--out', str(tmp_path / 'x.index'),
                          '--no-progress'])
