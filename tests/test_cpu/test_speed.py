"""cpu_speed: on for CPUs only by default, every global setting put back, nothing left in data workers,
results that do not depend on the CPU vendor beyond float rounding."""
import gc

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cnclip_mm.cpu import choose_threads, cpu_speed, dropout, heap, mode, onednn


def _global_state():
    return torch.get_num_threads(), torch._C._len_torch_function_stack(), heap.active(), gc.get_freeze_count()


@pytest.mark.parametrize('enabled, device, on', [
    ('auto', 'cpu', True), ('auto', 'cuda', False), ('auto', 'meta', False), (True, 'cuda', True),
    (False, 'cpu', False)])
def test_auto_follows_the_device_and_everything_is_restored(enabled, device, on):
    torch.set_num_threads(1)
    before = _global_state()
    with cpu_speed(enabled, device) as state:
        assert state.on is on and mode.active() is on  # this machine takes oneDNN (an AMD CPU)
        assert torch.get_num_threads() == (choose_threads().threads if on else 1)
        assert (gc.get_freeze_count() > 0) is on
        assert heap.active() is (on and heap.glibc_malloc() is not None)
    assert _global_state() == before and not mode.active()


def test_restored_after_an_error_and_nested_blocks_leave_it_to_the_outer():
    before = _global_state()
    with pytest.raises(RuntimeError, match='boom'):
        with cpu_speed(True, threads=1):
            with cpu_speed(True, threads=1) as inner:
                assert not inner.on and 'enclosing' in inner.describe()
                assert torch._C._len_torch_function_stack() == 1
            raise RuntimeError('boom')
    assert _global_state() == before


def test_explicit_threads_apply_even_when_off():
    before = torch.get_num_threads()
    with cpu_speed(False, threads=1) as state:
        assert torch.get_num_threads() == 1 and not mode.active()
        assert 'torch intra-op threads: 1 (requested)' in state.describe()
    assert torch.get_num_threads() == before


def test_bad_choices_are_named():
    with pytest.raises(ValueError, match="cpu_speed must be 'auto', True or False, got 'yes'"):
        with cpu_speed('yes'):
            pass


class _Probe(Dataset):
    """Each item reports the loading process's mode stack and thread count."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return dict(active=mode.active(), stack=torch._C._len_torch_function_stack(),
                    threads=torch.get_num_threads(), heap=heap.active())


def test_forked_worker_has_no_mode_no_kept_memory_and_one_thread():
    loader = DataLoader(_Probe(), batch_size=1, num_workers=1, multiprocessing_context='fork',
                        collate_fn=lambda items: items[0])
    with cpu_speed(True, threads=2):
        assert mode.active()
        seen = list(loader)
    assert seen == [dict(active=False, stack=0, threads=1, heap=False)] * 2


def _train_forward():
    """A training forward with dropout (hidden states and attention probabilities), seed 0."""
    torch.manual_seed(0)
    lin = nn.Linear(768, 768)
    x = torch.randn(285, 768)
    hidden = nn.Dropout(0.1)(lin(x))
    q = torch.randn(8, 12, 51, 64)
    probs = F.scaled_dot_product_attention(q, q, q, dropout_p=0.1)
    return hidden, probs


def test_same_seed_same_masks_whatever_the_vendor(monkeypatch):
    """Under cpu_speed the masks come from torch's RNG state alone (one draw seeds SFC64), so whichever
    vendor rule picks the Linear kernel, the same seed drops the same elements; torch's own
    ``bernoulli_`` would not promise that (MKL's sampler on Intel only)."""
    monkeypatch.setattr(onednn, 'MIN_MACS', 0)
    seen = []
    for name in ('GenuineIntel', 'AuthenticAMD', None):
        monkeypatch.setattr(onednn, 'cpu_vendor', lambda name=name: name)
        with cpu_speed(True):
            hidden, probs = _train_forward()
        seen.append((hidden == 0, probs))
    torch.manual_seed(0)
    nn.Linear(768, 768), torch.randn(285, 768)  # the draws _train_forward makes before its dropout
    keep = dropout.keep_mask((285, 768), 0.1)
    assert torch.equal(seen[0][0], ~keep) and 0.09 < seen[0][0].float().mean() < 0.11
    for zeros, probs in seen[1:]:
        assert torch.equal(zeros, seen[0][0]) and torch.equal(probs, seen[0][1])
