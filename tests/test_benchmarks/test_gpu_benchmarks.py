"""benchmarks/gpu_train.py and gpu_extract.py run end to end on the CPU at tiny size (``--tiny``: the tiny
config, batch 4, 2 timed steps) and print every line they promise, with numbers that parse and agree with
each other. On a machine with CUDA the numbers are the GPU's; these runs only prove the scripts work.
"""
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'benchmarks'))
import gpu_extract  # noqa: E402  benchmarks/gpu_extract.py
import gpu_train  # noqa: E402  benchmarks/gpu_train.py

TINY_CPU = ['--tiny', '--device', 'cpu']
COMPILED = ['--modes', 'compiled', '--backend', 'aot_eager', '--precisions', 'bf16']


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: the tiny model's kernels are too small to share, and a busy machine's second core
    would make each step wait (seconds instead of tenths)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch._dynamo.reset()


def _records(text: str, kind: str) -> list:
    """The ``key=value`` fields of every printed line starting with ``kind``."""
    return [dict(re.findall(r'(\w+)=(\S+)', line)) for line in text.splitlines() if line.startswith(kind + ' ')]


def test_train_flops_of_vit_b_16_at_52_tokens():
    """132 GFLOP per sample (image 105.4, text 26.8 at 52 tokens); the text part grows with the length."""
    cfg, context = gpu_train.model_config(tiny=False)
    with torch.device('meta'):
        shapes = gpu_train.shapes_of(gpu_train.build_ours(cfg).state_dict())
    assert context == 52
    flops = gpu_train.train_flops_per_sample(shapes, 52)
    assert flops == pytest.approx(132.18e9, rel=1e-3)
    text_per_token = (flops - gpu_train.train_flops_per_sample(shapes, 26)) / 26
    assert text_per_token == pytest.approx(26.8e9 / 52, rel=0.03)


@pytest.mark.parametrize('argv', [['--precisions', 'bf16,fp16', '--modes', 'eager', '--grad-ckpt'], COMPILED],
                         ids=['eager-checkpointing', 'compiled'])
def test_gpu_train_runs_tiny_on_the_cpu(capsys, argv):
    rates = gpu_train.main(TINY_CPU + argv)
    out = capsys.readouterr().out
    assert f"grad_ckpt={'--grad-ckpt' in argv}" in out
    trains, ratios = _records(out, 'train'), _records(out, 'ratio')
    assert len(trains) == len(rates) == 2 * len(ratios) and ratios
    cfg, _ = gpu_train.model_config(tiny=True)
    shapes = gpu_train.shapes_of(gpu_train.build_ours(cfg).state_dict())
    for line in trains:
        rate = float(line['samples_per_s'])
        assert rate == pytest.approx(rates[line['impl'], line['precision'], line['mode']], abs=0.01)
        assert line['batch'] == '4' and line['peak_mem_gib'] == '-'  # no CUDA memory to report on the CPU
        flops = gpu_train.train_flops_per_sample(shapes, int(line['text_len']))
        assert float(line['mfu']) == pytest.approx(rate * flops / 989e12, rel=0.01)
    for line in ratios:
        want = rates['ours', line['precision'], line['mode']] / rates['hf', line['precision'], line['mode']]
        assert float(line['ours_over_hf']) == pytest.approx(want, rel=0.01)


@pytest.mark.parametrize('argv', [['--precisions', 'bf16,fp16', '--modes', 'eager'], COMPILED],
                         ids=['eager', 'compiled'])
def test_gpu_extract_runs_tiny_on_the_cpu(capsys, argv):
    rates = gpu_extract.main(TINY_CPU + argv)
    out = capsys.readouterr().out
    extracts, ratios = _records(out, 'extract'), _records(out, 'ratio')
    assert len(extracts) == len(rates) == 2 * len(ratios) and ratios
    assert {line['kind'] for line in extracts} == {'images', 'texts'}
    for line in extracts:
        rate = float(line['items_per_s'])
        assert rate == pytest.approx(rates[line['impl'], line['kind'], line['precision'], line['mode']], abs=0.01)
        assert line['peak_mem_gib'] == '-'
        if line['impl'] == 'hf':  # the same weights give HF our features (half-precision rounding aside)
            assert float(line['min_cosine_to_ours']) > 0.99
    for line in ratios:
        key = line['kind'], line['precision'], line['mode']
        assert float(line['ours_over_hf']) == pytest.approx(rates[('ours', *key)] / rates[('hf', *key)], rel=0.01)


def test_unknown_choices_are_named():
    with pytest.raises(SystemExit):
        gpu_train.main(TINY_CPU + ['--precisions', 'int8'])
