"""benchmarks/lora.py runs end to end on the tiny model, in this process (``--tiny --inline``)."""

import importlib.util
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_lora_benchmark_tiny_inline(capsys):
    spec = importlib.util.spec_from_file_location(
        'bench_lora', osp.join(REPO, 'benchmarks', 'lora.py')
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(['--tiny', '--inline', '--reps', '1', '--batch', '2'])
    full, lora = results['full'], results['lora']
    assert full['trainable'] == full['total'] and 0 < lora['trainable'] * 10 < full['trainable']
    assert lora['total'] > full['total']  # the adapters come on top of the frozen weights
    assert all(len(r['times']) == 1 and r['times'][0] > 0 for r in results.values())
    out = capsys.readouterr().out
    assert 'tiny model, batch 2' in out and 'lora / full: trainable' in out
