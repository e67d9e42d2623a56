"""VectorIndex on faiss: approximate recall against exact search, persistence, add / delete, model refusal."""
import logging

import numpy as np
import pytest

from cnclip_mm.index import ModelMismatchError, VectorIndex, open_index


def clustered_unit_vectors(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """CLIP-like features: unit vectors around ``clusters`` directions (a fixed set per ``dim``)."""
    centers = np.random.default_rng(dim).standard_normal((clusters, dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top10(gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ gallery.T), axis=1, kind='stable')[:, :10]


def test_ivf_recall_at_10_against_exact_search(tmp_path, caplog):
    """Past exact_max the index turns IVF (logged); its recall@10 at the default nprobe stays >= 0.95.
    (100k x 512-d, with real demo features too: benchmarks/index_engines.py.)"""
    gallery = np.concatenate([clustered_unit_vectors(12_000, 64, 300, 1),
                              _unit(np.random.default_rng(2).standard_normal((3_000, 64)))])  # + uniform noise
    queries = clustered_unit_vectors(300, 64, 300, 3)
    index = VectorIndex.create(str(tmp_path / 'ix'), 64, exact_max=4_000)
    with caplog.at_level(logging.INFO, logger='cnclip_mm.index'):
        for start in range(0, len(gallery), 5_000):
            index.add([f'v{i}' for i in range(start, start + 5_000)], gallery[start:start + 5_000])
    assert index.kind == 'ivf' and 'switching from exact search to approximate IVF' in caplog.text
    truth = exact_top10(gallery, queries)

    def recall():
        ids, scores = index.search(queries, 10)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
        found = np.array([[int(i[1:]) for i in row] for row in ids])
        return np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, truth)])

    default = recall()
    assert default >= 0.95, default
    index.set_nprobe(1)
    assert recall() < default - 0.02  # the data is hard enough for the probe count to matter


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize('exact_max', [1_000, 100], ids=['exact', 'ivf'])
def test_round_trip_add_delete_and_upsert(tmp_path, exact_max):
    vectors = clustered_unit_vectors(600, 32, 20, 4)
    path = str(tmp_path / 'ix')
    index = VectorIndex.create(path, 32, model=dict(weights='w0'), exact_max=exact_max)
    index.add([f'a{i}' for i in range(400)], vectors[:400])
    index.save()
    reopened = open_index(path)
    assert reopened.kind == ('exact' if exact_max > 400 else 'ivf') and len(reopened) == 400
    np.testing.assert_array_equal(reopened.search(vectors[:50], 5)[0], index.search(vectors[:50], 5)[0])
    np.testing.assert_allclose(reopened.get_vectors(['a7', 'a399']), vectors[[7, 399]], atol=1e-6)

    reopened.add([f'b{i}' for i in range(200)], vectors[400:])  # incremental add
    assert reopened.delete(['a0', 'a1', 'never-added']) == 2  # delete by id, unknown ids ignored
    reopened.add(['a2'], vectors[500:501])  # an existing id is replaced
    reopened.save()
    final = open_index(path)
    assert len(final) == 598 and 'a0' not in final and 'b199' in final
    assert final.search(vectors[:1], 3)[0][0, 0] != 'a0'
    assert final.search(vectors[500:501], 1)[0][0, 0] in ('a2', 'b100')  # the same vector under two ids
    np.testing.assert_allclose(final.get_vectors(['a2']), vectors[500:501], atol=1e-6)
    with pytest.raises(KeyError, match="'a0'"):
        final.get_vectors(['a0'])


def test_bad_input_and_model_refusal(tmp_path):
    index = VectorIndex.create(str(tmp_path / 'ix'), 8, model=dict(weights='w0', embed_dim=8, source='m0.pt'))
    with pytest.raises(ValueError, match=r'shape \[N, 8\]'):
        index.add(['x'], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match='unique'):
        index.add(['x', 'x'], np.ones((2, 8), np.float32))
    with pytest.raises(ModelMismatchError, match="weights: index has 'w0', this model has 'w1'") as info:
        index.check_model(dict(weights='w1', embed_dim=8, source='m1.pt'))
    assert 'm0.pt' in str(info.value) and 'rebuild' in str(info.value)
    with pytest.raises(FileNotFoundError, match='no index'):
        open_index(str(tmp_path / 'missing'))
