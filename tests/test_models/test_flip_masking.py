"""FLIP patch masking of the ViT: off is today's forward bit for bit, on keeps the class token and the
expected number of patch tokens, evaluation is unmasked, and it works with grad checkpointing, fullgraph
compile, the tower lock, the feature cache (masks replayed) and the unmasked-tuning hook (resumable)."""
import copy
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

from cnclip_mm.engine.hooks import UnmaskedTuningHook
from cnclip_mm.models.backbones import CLIPVisionTransformer
from cnclip_mm.registry import MODELS
from tests.test_models.tiny_batches import pair_batch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'benchmarks'))
import flip  # noqa: E402

PATCHES = 16  # 32 px, patch 8


def _vit(mask_ratio=0.0, checkpointing=False, layers=2):
    torch.manual_seed(0)
    return CLIPVisionTransformer(arch=dict(width=32, layers=layers, heads=2, patch_size=8), img_size=32,
                                 output_dim=16, grad_checkpointing=checkpointing, mask_ratio=mask_ratio)


def _images(n=3):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _tokens(vit, x):
    """Class token + patch tokens with positional embeddings, before ln_pre (as the forward builds them)."""
    x = vit.conv1(x).flatten(2).transpose(1, 2)
    x = torch.cat([vit.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
    return x + vit.positional_embedding.to(x.dtype)


def _head(vit, tokens):
    return vit.ln_post(vit.transformer(vit.ln_pre(tokens), queries=1)[:, 0]) @ vit.proj


def _unmodified_forward(vit, x):
    """The forward before masking existed, written out: ln_pre(tokens + pos), blocks, class token."""
    x = vit.conv1(x).flatten(2).transpose(1, 2)
    x = torch.cat([vit.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
    x = vit.ln_pre(x + vit.positional_embedding.to(x.dtype))
    return vit.ln_post(vit.transformer(x, queries=1)[:, 0]) @ vit.proj


def _block_input_lengths(vit):
    lengths = []
    vit.transformer.resblocks[0].register_forward_pre_hook(lambda _, args: lengths.append(args[0].shape[1]))
    return lengths


@pytest.mark.parametrize('mode,ratio', [('train', 0.0), ('eval', 0.5)])
def test_off_or_eval_is_the_unmodified_forward_bit_for_bit(mode, ratio):
    vit = _vit(ratio).train(mode == 'train')
    lengths = _block_input_lengths(vit)
    x = _images()
    state = torch.get_rng_state()
    out = vit(x)
    assert torch.equal(torch.get_rng_state(), state)  # no random number drawn: dropout elsewhere unchanged
    assert lengths == [1 + PATCHES]
    assert torch.equal(out, _unmodified_forward(vit, x))
    grads = torch.autograd.grad(out.square().sum(), list(vit.parameters()))
    want = torch.autograd.grad(_unmodified_forward(vit, x).square().sum(), list(vit.parameters()))
    assert all(torch.equal(g, w) for g, w in zip(grads, want))


@pytest.mark.parametrize('ratio,kept', [(0.5, 8), (0.75, 4), (0.9, 2)])
def test_masked_forward_keeps_class_token_and_a_random_subset_per_image(ratio, kept):
    vit = _vit(ratio).train()
    lengths = _block_input_lengths(vit)
    x = _images()
    torch.manual_seed(5)
    out = vit(x)
    assert lengths == [1 + kept] and vit.kept_patches(PATCHES) == kept
    # The same draw by hand: rank uniform noise per image, keep the top ``kept`` patches after adding positions.
    torch.manual_seed(5)
    index = torch.rand(3, PATCHES).topk(kept, dim=1).indices
    assert len({tuple(sorted(row.tolist())) for row in index}) == 3  # each image its own subset
    tokens = _tokens(vit, x)
    kept_tokens = torch.stack([torch.cat([t[:1], t[1:][i]]) for t, i in zip(tokens, index)])
    torch.testing.assert_close(out, _head(vit, kept_tokens), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match='mask_ratio'):
        _vit(1.0)


def test_masks_replay_from_the_generator_state():
    """The mask comes from torch's default generator (seeded by the run, saved by RNGStateHook)."""
    vit = _vit(0.5).train()
    x = _images()
    state = torch.get_rng_state()
    first = vit(x)
    torch.set_rng_state(state)
    assert torch.equal(vit(x), first)
    assert not torch.equal(vit(x), first)  # the next draw masks other patches


def test_grad_checkpointing_and_fullgraph_compile():
    x = _images()
    plain = _vit(0.5, layers=1).train()  # one block: compiling stays cheap
    torch.manual_seed(7)
    out = plain(x)
    grads = torch.autograd.grad(out.square().sum(), list(plain.parameters()))
    ckpt = _vit(0.5, checkpointing=True, layers=1).train()
    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend('aot_eager')
    compiled = torch.compile(ckpt, fullgraph=True, backend=backend)
    block_lengths, ln_pre_lengths = [], []  # ln_pre's input: outside the checkpointed blocks, compiled too
    ckpt.ln_pre.register_forward_pre_hook(lambda _, args: ln_pre_lengths.append(args[0].shape[1]))
    # Block hooks in eager only: a checkpointed region allows no side effects under compile.
    handle = ckpt.transformer.resblocks[0].register_forward_pre_hook(
        lambda _, args: block_lengths.append(args[0].shape[1]))
    for run in (ckpt, compiled):  # eager with checkpointing, then compiled with checkpointing
        torch.manual_seed(7)
        got = run(x)
        got_grads = torch.autograd.grad(got.square().sum(), list(ckpt.parameters()))
        handle.remove()
        torch.testing.assert_close(got, out, atol=1e-5, rtol=1e-5)
        for g, w in zip(got_grads, grads):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    assert block_lengths == [1 + 8, 1 + 8] and ln_pre_lengths == [1 + 8, 1 + 8]
    assert backend.frame_count == 1 and not counters['graph_break'], dict(counters['graph_break'])


def _clip(tiny_model_cfg, ratio, **kwargs):
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg['image_encoder']['mask_ratio'] = ratio
    cfg['text_encoder']['arch'].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_locked_image_tower_is_masked_and_stays_frozen(tiny_model_cfg):
    """Stage 1 (image tower locked) masks too: its forward costs half, and nothing of it trains."""
    model = _clip(tiny_model_cfg, 0.5).train()
    model.lock_image_tower()
    lengths = _block_input_lengths(model.image_encoder)
    batch = model.data_preprocessor(pair_batch((5, 9, 12, 7)), training=True)
    model(**batch, mode='loss')['loss'].backward()
    assert lengths == [1 + 8]
    assert all(p.grad is None for p in model.image_encoder.parameters())
    assert all(p.grad is not None for p in model.text_encoder.parameters())
    model.eval()
    model(**batch, mode='tensor')
    assert lengths == [1 + 8, 1 + PATCHES]  # evaluation sees every patch


class _Capture(torch.optim.SGD):
    def step(self, closure=None):
        self.grads = {i: p.grad.clone() for i, p in enumerate(self.param_groups[0]['params']) if p.grad is not None}


def test_feature_cache_replays_masks_and_counts_the_siglip_bias_once(tiny_model_cfg):
    """accum_freq=2 on a masked model with the SigLIP loss gives the gradients of one big batch: the
    re-encoding pass draws the caching pass's masks, and the bias (like the temperature) counts once."""
    from mmengine.optim import OptimWrapper

    results = []
    for accum in (1, 2):
        model = _clip(tiny_model_cfg, 0.5, accum_freq=accum, init_logit_scale=math.log(10),
                      loss=dict(type='SigLipLoss')).train()
        optimizer = _Capture(model.parameters(), lr=0.0)
        torch.manual_seed(3)
        log = model.train_step(pair_batch((5, 9, 12, 7, 6, 8)), OptimWrapper(optimizer))
        results.append((log['loss'].item(), optimizer.grads))
    (loss, grads), (loss2, grads2) = results
    assert loss2 == pytest.approx(loss, abs=1e-6) and grads.keys() == grads2.keys()
    for key, grad in grads.items():
        torch.testing.assert_close(grads2[key], grad, atol=1e-5, rtol=0)


def _runner(model, epoch=0, max_epochs=4, it=0, max_iters=40):
    return SimpleNamespace(model=model, epoch=epoch, max_epochs=max_epochs, iter=it, max_iters=max_iters)


def test_unmasked_tuning_hook_last_epochs_and_resume():
    model = SimpleNamespace(image_encoder=_vit(0.5))
    hook = UnmaskedTuningHook(epochs=1)
    hook.before_train(_runner(model))
    for epoch, ratio in ((0, 0.5), (2, 0.5), (3, 0.0)):
        hook.before_train_epoch(_runner(model, epoch))
        assert model.image_encoder.mask_ratio == ratio
    # A run resumed in the unmasked phase (fresh model built with 0.5) is unmasked from the start,
    # one resumed before it is masked.
    for epoch, ratio in ((3, 0.0), (1, 0.5)):
        resumed = SimpleNamespace(image_encoder=_vit(0.5))
        UnmaskedTuningHook(epochs=1).before_train(_runner(resumed, epoch))
        assert resumed.image_encoder.mask_ratio == ratio
    by_iter, model = UnmaskedTuningHook(iters=10), SimpleNamespace(image_encoder=_vit(0.5))
    by_iter.before_train(_runner(model))
    assert model.image_encoder.mask_ratio == 0.5
    by_iter.before_train_iter(_runner(model, it=30), 0)
    assert model.image_encoder.mask_ratio == 0.0
    with pytest.raises(ValueError, match='exactly one'):
        UnmaskedTuningHook()
    with pytest.raises(ValueError, match='mask_ratio=0'):
        UnmaskedTuningHook(epochs=1).before_train(_runner(SimpleNamespace(image_encoder=_vit(0.0))))


def test_leaf_config_and_benchmark_smoke_run():
    from mmengine.config import Config

    from cnclip_mm.registry import HOOKS
    cfg = Config.fromfile(str(REPO / 'configs/flip/stage2_vit-b-16_flip.py'))
    assert cfg.model.image_encoder.mask_ratio == 0.5
    assert isinstance(HOOKS.build(cfg.custom_hooks[0]), UnmaskedTuningHook)
    result = flip.main(['--tiny', '--reps', '1'])
    assert result['ratio'] == 0.5 and result['tokens'] == (33, 65)  # 64 patches -> 32 kept + class token
    assert set(result) >= {'full', 'image'} and all(result[w]['speedup'] > 0 for w in ('full', 'image'))


def test_masked_siglip_train_step_runs_on_the_meta_device(tiny_model_cfg):
    """No host reads: a masked forward with the SigLIP loss and its backward run on the meta device."""
    with torch.device('meta'):
        model = _clip(tiny_model_cfg, 0.5, loss=dict(type='SigLipLoss')).train()
    batch = model.data_preprocessor(pair_batch((5, 9, 7)), training=True)
    inputs = {k: v.to('meta') if torch.is_tensor(v) else v for k, v in batch['inputs'].items()}
    lengths = _block_input_lengths(model.image_encoder)
    loss = model(inputs=inputs, data_samples=batch['data_samples'], mode='loss')['loss']
    loss.backward()
    assert loss.is_meta and lengths == [1 + 8] and model.loss_module.logit_bias.grad.is_meta
