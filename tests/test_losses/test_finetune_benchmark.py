"""benchmarks/finetune_duplicates.py runs end to end (one short epoch per loss) and reports both losses."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
import finetune_duplicates  # noqa: E402


def test_plain_and_aware_runs_are_reported(tmp_path, capsys):
    results = finetune_duplicates.main(['--epochs', '1', '--seeds', '0', '--data-root', str(tmp_path / 'classes')])
    assert set(results) == {'plain', 'aware'}
    for runs in results.values():
        assert len(runs) == 1 and runs[0]['steps'] == 31  # 2000 images, batch 64, drop_last
        assert 0.0 <= runs[0]['zeroshot/top1'] <= 100.0
    printed = capsys.readouterr().out
    assert '| plain |' in printed and '| aware |' in printed and 'better in' in printed
