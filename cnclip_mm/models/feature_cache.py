"""Gradient accumulation with feature caching (the official ``accum_freq``).

Naively summing the losses of K small batches gives each sample only its micro-batch as
negatives. Here the contrastive loss always sees the whole batch: features of all K micro-batches
are first computed without grad and cached; then each micro-batch is re-encoded with grad and
its fresh features replace its cached ones inside the full-batch loss. Summing the K backward
passes gives exactly the gradient of the big-batch loss while activations are only ever kept for
one micro-batch.
"""
from contextlib import nullcontext
from typing import Dict, List

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel

from .losses.context import batch_context, total_loss


class FeatureCacheAccumulator:
    """One optimizer step over a batch split into ``accum_freq`` micro-batches.

    The dataloader batch is the effective batch (per rank); set its size to
    ``accum_freq x`` the micro-batch that fits in memory. RNG state is replayed so dropout masks of
    the re-encoding pass equal those of the caching pass. Under DDP gradients are synchronised once,
    on the last micro-batch, and the loss module still gathers features across ranks.

    Args:
        model: the ``ChineseCLIP`` model or a DDP wrapper around it.
        accum_freq: number of micro-batches per optimizer step (>= 1).
    """

    def __init__(self, model: nn.Module, accum_freq: int) -> None:
        if accum_freq < 1:
            raise ValueError(f'FeatureCacheAccumulator: accum_freq must be >= 1, got {accum_freq}')
        self.model = model
        self.accum_freq = accum_freq
        print_log(f'feature-cache accumulation: {accum_freq} micro-batches per optimizer step'
                  f'{" (DDP)" if is_model_wrapper(model) else ""}', logger='current')

    @property
    def net(self) -> nn.Module:
        return self.model.module if is_model_wrapper(self.model) else self.model

    def _encode(self, runner: nn.Module, inputs: dict, idx: torch.Tensor):
        sub = dict(images=inputs['images'][idx], text_ids=inputs['text_ids'][idx],
                   image_slots=list(range(len(idx))), text_slots=list(range(len(idx))))
        return runner(inputs=sub, mode='tensor')

    def train_step(self, data, optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """Preprocess ``data``, cache features, re-encode each micro-batch with grad, step once.

        Returns:
            ``dict(loss=..., logit_scale=...)`` (detached) for logging; the loss equals the
            big-batch loss.
        """
        net = self.net
        with optim_wrapper.optim_context(self.model):
            data = net.data_preprocessor(data, training=True)
        inputs = data['inputs']
        if inputs.get('images') is None or inputs.get('text_ids') is None or \
                inputs['image_slots'] != inputs['text_slots']:
            raise ValueError('feature-cache accumulation needs every sample to carry both an image and text_ids')
        n = inputs['images'].shape[0]
        if n < self.accum_freq:
            raise ValueError(f'accum_freq={self.accum_freq} needs at least that many samples per batch, got {n}')
        chunks: List[torch.Tensor] = list(torch.arange(n).chunk(self.accum_freq))
        cuda = torch.cuda.is_available()

        # Pass 1: features of every micro-batch, no graph kept; remember the RNG for each. The bare
        # module skips DDP's hooks; FSDP must gather its sharded parameters, so it runs wrapped.
        first = self.model if isinstance(self.model, FullyShardedDataParallel) else net
        rng_states, cached_img, cached_txt = [], [], []
        with torch.no_grad(), optim_wrapper.optim_context(self.model):
            for idx in chunks:
                rng_states.append((torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else None))
                img, txt = self._encode(first, inputs, idx)
                cached_img.append(img)
                cached_txt.append(txt)
        end_rng = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if cuda else None)

        # Pass 2: re-encode each micro-batch with grad inside the full-batch loss.
        extra = batch_context(net.loss_module, inputs, data.get('data_samples'))
        loss_value = None
        for j, idx in enumerate(chunks):
            torch.set_rng_state(rng_states[j][0])
            if cuda:
                torch.cuda.set_rng_state_all(rng_states[j][1])
            last = j == len(chunks) - 1
            sync = nullcontext() if last or not hasattr(self.model, 'no_sync') else self.model.no_sync()
            with sync:
                with optim_wrapper.optim_context(self.model):
                    img, txt = self._encode(self.model, inputs, idx)
                    all_img = torch.cat(cached_img[:j] + [img] + cached_img[j + 1:])
                    all_txt = torch.cat(cached_txt[:j] + [txt] + cached_txt[j + 1:])
                    # Count the temperature's gradient once, in the pass DDP synchronises.
                    scale = net.logit_scale if last else net.logit_scale.detach()
                    loss = net.loss_module(all_img, all_txt, scale, **extra)
                optim_wrapper.backward(total_loss(loss))
            if loss_value is None:
                loss_value = loss
        torch.set_rng_state(end_rng[0])
        if cuda:
            torch.cuda.set_rng_state_all(end_rng[1])
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        losses = dict(loss_value, loss=total_loss(loss_value)) if isinstance(loss_value, dict) \
            else dict(loss=loss_value)
        losses = {key: value.detach() for key, value in losses.items()}
        return dict(losses, logit_scale=net.logit_scale.detach().exp().clamp(max=100))
