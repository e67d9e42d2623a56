"""LoRA under CLIPDistributedDataParallel: 2 gloo ranks give the adapter gradients of one process on the
global batch, with and without feature-cache accumulation, and no gradient for a frozen weight."""

import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from tests.test_adapters.conftest import LORA, lora_model_cfg
from tests.test_models.tiny_batches import pair_batch

LENGTHS = (12, 30, 7, 52, 9, 20, 33, 16)


def _model(accum_freq: int):
    from cnclip_mm.registry import MODELS

    init_default_scope('cnclip_mm')
    cfg = lora_model_cfg(image=LORA['image'], text=dict(LORA['text'], dropout=0.0))
    cfg['accum_freq'] = accum_freq
    cfg['text_encoder']['arch'].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    with torch.no_grad():  # non-zero B, so that every adapter weight gets a gradient
        for name, param in model.named_parameters():
            if 'lora_B' in name:
                param.normal_(std=0.1, generator=torch.Generator().manual_seed(len(name)))
    return model.train()


def _grads(model, step) -> dict:
    wrapper = OptimWrapper(
        optimizer=torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0)
    )
    grads = {}
    wrapper.step = lambda **kwargs: grads.update(
        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    )
    step(wrapper)
    return grads


def _worker(rank: int, port: int, out_dir: str) -> None:
    from cnclip_mm.engine.runner.ddp import CLIPDistributedDataParallel

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    data = pair_batch(LENGTHS)
    half = slice(rank * 4, rank * 4 + 4)
    mine = dict(
        data,
        inputs=data['inputs'][half],
        text_ids=data['text_ids'][half],
        data_samples=data['data_samples'][half],
        text_slots=list(range(4)),
    )
    results = {}
    for accum_freq in (1, 2):
        model = _model(accum_freq)
        ddp = CLIPDistributedDataParallel(model, broadcast_buffers=False)
        results[accum_freq] = _grads(
            model, lambda wrapper, ddp=ddp: ddp.train_step(dict(mine), wrapper)
        )
    torch.save(results, os.path.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_ranks_equal_one_process_on_the_global_batch():
    model = _model(1)
    ref = _grads(model, lambda wrapper: model.train_step(pair_batch(LENGTHS), wrapper))
    adapters = {n for n, _ in model.named_parameters() if 'lora_' in n}
    assert set(ref) == adapters
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(port, out), nprocs=2, join=True)
        results = [torch.load(os.path.join(out, f'rank{r}.pt')) for r in range(2)]
    for per_rank in results:
        for accum_freq, grads in per_rank.items():
            assert set(grads) == adapters, accum_freq
            for name, grad in ref.items():
                torch.testing.assert_close(
                    grads[name], grad, atol=1e-6, rtol=0, msg=f'{accum_freq} {name}'
                )
