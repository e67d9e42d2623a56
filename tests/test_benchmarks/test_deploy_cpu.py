"""benchmarks/deploy_cpu.py runs end to end at tiny size: a row per tower and caption length, the three
backends' features agreeing, ratios that follow from the printed times."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
import deploy_cpu  # noqa: E402  benchmarks/deploy_cpu.py


def test_tiny_run(tmp_path, capsys):
    rows = deploy_cpu.main(['--tiny', '--reps', '1', '--threads', '1', '--onnx-dir', str(tmp_path / 'onnx')])
    assert [r['tower'] for r in rows] == ['image', 'text (12 tokens)', 'text (32 tokens)']
    for row in rows:
        assert row['max_abs_diff'] < 1e-4
        assert row['ort_vs_official'] == pytest.approx(row['official_median_ms'] / row['ort_median_ms'])
    assert 'ORT vs official-style' in capsys.readouterr().out
