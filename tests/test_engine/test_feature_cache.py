"""Feature-cache accumulation: K micro-batches give the gradients and loss of one K-times batch."""
import copy
import os
import socket
import tempfile

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from cnclip_mm.models.feature_cache import FeatureCacheAccumulator
from cnclip_mm.registry import DATASETS, MODELS


class GradCapture(OptimWrapper):
    """Records the gradients at ``step`` instead of updating."""

    def step(self, **kwargs):
        self.grads = {n: p.grad.clone() for n, p in self.named if p.grad is not None}
        self.steps = getattr(self, 'steps', 0) + 1


def _model(tiny_model_cfg, accum_freq=1):
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg['accum_freq'] = accum_freq
    cfg['text_encoder']['arch'].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _batch(tiny_data, tiny_model_cfg, n=8):
    pipeline = [dict(type='LoadImage'), dict(type='ResizeExact', scale=32),
                dict(type='TokenizeText', tokenizer=tiny_model_cfg['tokenizer']),
                dict(type='PackCLIPInputs')]
    ds = DATASETS.build(dict(type='ImageTextTSVDataset', data_root=tiny_data, split='train',
                             pipeline=pipeline))
    return pseudo_collate([ds[i] for i in range(n)])


def _capture(model):
    wrapper = GradCapture(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    wrapper.named = list(model.named_parameters())
    return wrapper


@pytest.mark.parametrize('accum_freq', [2, 4])
def test_same_gradients_as_big_batch(tiny_data, tiny_model_cfg, accum_freq):
    data = _batch(tiny_data, tiny_model_cfg)
    ref_model = _model(tiny_model_cfg)
    ref = _capture(ref_model)
    ref_log = ref_model.train_step(copy.deepcopy(data), ref)

    model = _model(tiny_model_cfg, accum_freq)
    model.load_state_dict(ref_model.state_dict())
    got = _capture(model)
    log = model.train_step(copy.deepcopy(data), got)  # ChineseCLIP delegates to the accumulator
    assert got.steps == 1
    assert log['loss'].item() == pytest.approx(ref_log['loss'].item(), abs=1e-6)
    assert set(got.grads) == set(ref.grads)
    for name, grad in ref.grads.items():
        torch.testing.assert_close(got.grads[name], grad, atol=1e-5, rtol=0, msg=name)
    # All gradients zeroed after the step.
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_naive_sum_differs_and_bad_input(tiny_data, tiny_model_cfg):
    """The cached-feature loss is not the naive mean of micro-batch losses (negatives differ)."""
    data = _batch(tiny_data, tiny_model_cfg)
    model = _model(tiny_model_cfg)
    pre = model.data_preprocessor(copy.deepcopy(data), training=True)
    full = model(**pre, mode='loss')['loss'].item()
    halves = []
    for part in (slice(0, 4), slice(4, 8)):
        sub = dict(inputs=data['inputs'][part], data_samples=data['data_samples'][part])
        halves.append(model(**model.data_preprocessor(copy.deepcopy(sub), True), mode='loss')['loss'].item())
    assert abs(full - sum(halves) / 2) > 1e-3
    with pytest.raises(ValueError, match='at least'):
        FeatureCacheAccumulator(model, 16).train_step(copy.deepcopy(data), _capture(model))
    with pytest.raises(ValueError, match='accum_freq'):
        FeatureCacheAccumulator(model, 0)


def _ddp_worker(rank, port, tiny_data, cfg, out_dir):
    import gc

    import torch.distributed as dist

    from cnclip_mm.engine import CLIPDistributedDataParallel
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_default_scope('cnclip_mm')
    dist.init_process_group('gloo', rank=rank, world_size=2)
    model = _model(cfg, accum_freq=2)
    ddp = CLIPDistributedDataParallel(model, broadcast_buffers=False)
    data = _batch(tiny_data, cfg)
    mine = {k: v[rank * 4:(rank + 1) * 4] for k, v in data.items()}
    capture = _capture(model)
    log = ddp.train_step(mine, capture)
    torch.save(dict(grads=capture.grads, loss=log['loss']), os.path.join(out_dir, f'rank{rank}.pt'))
    del ddp, capture
    gc.collect()
    dist.destroy_process_group()


def test_ddp_accumulation_matches_big_batch(tiny_data, tiny_model_cfg):
    """2 ranks x 2 micro-batches of 2 = the gradients of one process on the batch of 8."""
    data = _batch(tiny_data, tiny_model_cfg)
    ref_model = _model(tiny_model_cfg)
    ref = _capture(ref_model)
    ref_log = ref_model.train_step(copy.deepcopy(data), ref)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_ddp_worker, args=(port, tiny_data, tiny_model_cfg, out), nprocs=2, join=True)
        results = [torch.load(os.path.join(out, f'rank{r}.pt')) for r in range(2)]
    for res in results:
        assert res['loss'].item() == pytest.approx(ref_log['loss'].item(), abs=1e-5)
        for name, grad in ref.grads.items():
            torch.testing.assert_close(res['grads'][name], grad, atol=1e-5, rtol=0, msg=name)
