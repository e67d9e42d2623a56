"""Collectives under 2-process gloo: the stream loop's end-of-data agreement runs on the backend's device
(CUDA under NCCL), and bad samples skipped (truncated captions) on rank 1 reach rank 0's log (counts summed,
messages per rank)."""
import os
import tempfile
from types import SimpleNamespace

import mmengine.dist.utils as dist_utils
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmengine.registry import init_default_scope
from torch.utils.data import DataLoader

from cnclip_mm.datasets import BadSampleReportHook
from cnclip_mm.engine.runner import StreamTrainLoop, stream_loop
from tests.test_datasets.data_writers import image_bytes, write_official
from tests.test_losses.test_contrastive import _free_port

WORLD = 2


def _stream_loop_stub():
    return SimpleNamespace(dataset=SimpleNamespace(resampled=False))


def _worker(rank, port, data_root, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=WORLD)
    init_default_scope('cnclip_mm')
    loop = _stream_loop_stub()
    agreed = [StreamTrainLoop._all_have_batch(loop, {'batch': rank}),  # both have a batch
              StreamTrainLoop._all_have_batch(loop, {'batch': rank} if rank == 0 else None)]  # rank 1 ran dry

    from cnclip_mm.registry import DATASETS
    pipeline = [dict(type='LoadImage'), dict(type='ResizeExact', scale=8), dict(type='PackCLIPInputs')]
    dataset = DATASETS.build(dict(type='ImageTextTSVDataset', data_root=data_root, pipeline=pipeline,
                                  on_bad_sample='skip'))
    loader = DataLoader(dataset, batch_size=2, sampler=DefaultSampler(dataset, shuffle=False),
                        collate_fn=pseudo_collate)
    for _ in loader:
        pass
    local_count = dataset.bad_samples.count
    logs = []
    import cnclip_mm.datasets.bad_samples as bad_samples
    bad_samples.print_log = lambda msg, **kwargs: logs.append(msg)
    BadSampleReportHook().after_train_epoch(SimpleNamespace(train_dataloader=loader, epoch=0))
    # Truncated captions: rank r cuts r + 1 of its 3, rank 0 logs the sums.
    from cnclip_mm.datasets import TruncationReportHook, truncation
    from cnclip_mm.registry import TRANSFORMS
    step = TRANSFORMS.build(dict(type='TokenizeText', context_length=4))
    for i, text in enumerate(['猫', '一二三四五', '一二三四五六'] if rank else ['猫', '狗', '一二三四五']):
        step(dict(text=text, text_source=f'rank {rank} line {i + 1}'))
    truncation.print_log = lambda msg, **kwargs: logs.append(msg)
    cut = TruncationReportHook._report(SimpleNamespace(train_dataloader=SimpleNamespace(
        dataset=SimpleNamespace(pipeline=SimpleNamespace(transforms=[step])))), 'train_dataloader', 'epoch 0')
    torch.save(dict(agreed=agreed, local_count=local_count, logs=logs, after=dataset.bad_samples.count, cut=cut),
               os.path.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_ranks_agree_and_rank0_logs_every_ranks_bad_samples(tmp_path):
    images = image_bytes()
    images[3] = images[3][: len(images[3]) // 2]  # sample index 3 (image 3): rank 1's under DefaultSampler
    write_official(tmp_path, images=images)
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(_free_port(), str(tmp_path), out), nprocs=WORLD, join=True)
        results = [torch.load(os.path.join(out, f'rank{r}.pt')) for r in range(WORLD)]
    for res in results:
        assert res['agreed'] == [True, False]
        assert res['after'] == 0  # reset on every rank
    assert [res['local_count'] for res in results] == [0, 1]  # the bad sample lived on rank 1
    assert results[1]['logs'] == []  # rank 1's logger would drop warnings: rank 0 reports for it
    log, cut_log = results[0]['logs']
    assert [res['cut'] for res in results] == [(3, 6), (3, 6)]  # summed over ranks on every rank
    assert cut_log.startswith('epoch 0: TokenizeText: 3 of 6 caption(s) (50.00%) longer than the context length 4, '
                              'truncated (rank 0: 1, rank 1: 2)')
    assert 'rank 0 line 3' in cut_log and 'rank 1 line 3' in cut_log
    assert 'epoch 0: skipped 1 bad sample(s) (rank 0: 0, rank 1: 1)' in log
    assert 'rank 1: ' in log and 'train_imgs.tsv line 3 (image_id 3): corrupt or truncated image' in log


@pytest.mark.parametrize('backend', ['gloo', 'nccl'])
def test_stream_loop_agreement_runs_on_the_backends_device(monkeypatch, backend):
    """Under NCCL the flag tensor goes to the current CUDA device (NCCL cannot reduce CPU tensors)."""
    seen = []
    monkeypatch.setattr(stream_loop, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dist_utils, 'get_backend', lambda group=None: backend)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(dist, 'all_reduce', lambda tensor, op=None: seen.append(tensor.device))
    want = torch.device('cuda', 0) if backend == 'nccl' else torch.device('cpu')
    if want.type == 'cuda' and not torch.cuda.is_available():
        # A CPU-only build cannot make the tensor; the error shows it was asked for CUDA, not the CPU.
        with pytest.raises((AssertionError, RuntimeError), match='CUDA'):
            StreamTrainLoop._all_have_batch(_stream_loop_stub(), {'batch': 0})
        assert seen == []
    else:
        assert StreamTrainLoop._all_have_batch(_stream_loop_stub(), {'batch': 0})
        assert seen == [want]
