"""benchmarks/serve_load.py --tiny runs end to end: both servers, every client level, the memory soak."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
import serve_load  # noqa: E402


def test_tiny_load_run(capsys):
    result = serve_load.main(['--tiny'])
    for name in ('batching', 'one-at-a-time'):
        rows = result['levels'][name]
        assert [row['clients'] for row in rows] == [1, 8, 32]
        assert all(row['requests'] == 16 and row['throughput'] > 0 and row['p99_ms'] >= row['p50_ms'] > 0
                   for row in rows)
    assert result['model_alone']['alone_ms'] > 0 and result['model_alone']['ratio'] > 0
    assert set(result['ratio']) == {1, 8, 32} and all(r > 0 for r in result['ratio'].values())
    assert result['memory']['requests'] == 32 and result['memory']['rss_after_mb'] > 0
    assert result['batches']['calls'] <= result['batches']['items'] and result['batches']['largest'] <= 32
    printed = capsys.readouterr().out
    assert 'batching / one-at-a-time throughput at 32 clients' in printed and 'resident memory' in printed
    assert 'model alone (no HTTP)' in printed
