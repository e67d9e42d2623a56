"""benchmarks/index_engines.py --tiny: every engine reports recall@10 against exact search and queries/s."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_tiny_benchmark_reports_every_engine():
    sys.path.insert(0, str(REPO / 'benchmarks'))
    import index_engines
    rows = index_engines.main(['--tiny', '--data', 'clustered'])
    engines = [row['engine'] for row in rows]
    assert engines[0].startswith('exact') and rows[0]['recall_at_10'] == 1.0
    assert sum('(default)' in e for e in engines) == 1 and any(e.startswith('faiss ivf') for e in engines)
    assert any(e.startswith('usearch') for e in engines)
    assert all(0.0 <= row['recall_at_10'] <= 1.0 and row['qps'] > 0 for row in rows)
    probes = [row['recall_at_10'] for row in rows if row['engine'].startswith('faiss ivf')]
    assert probes == sorted(probes) and probes[-1] > probes[0]  # more lists probed, more found
