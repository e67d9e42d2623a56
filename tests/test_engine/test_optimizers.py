"""CLIPOptimWrapperConstructor groups and AutocastOptimWrapper."""
import pytest
import torch
from mmengine.optim import OptimWrapper

from cnclip_mm.engine import AutocastOptimWrapper
from cnclip_mm.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS


def _build(model, **paramwise):
    ctor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='CLIPOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98), eps=1e-6,
                                              weight_decay=0.2)),
        paramwise_cfg=paramwise or None))
    return ctor(model)


def test_groups_hold_every_parameter_and_skip_decay(tiny_model_cfg):
    model = MODELS.build(tiny_model_cfg)
    model.lock_image_tower()  # frozen before the optimizer exists: still included
    wrapper = _build(model)
    decay, no_decay = wrapper.optimizer.param_groups
    assert decay['weight_decay'] == 0.2 and no_decay['weight_decay'] == 0.0
    assert wrapper.optimizer.defaults['betas'] == (0.9, 0.98)
    names = set(decay['names']) | set(no_decay['names'])
    assert names == {n for n, _ in model.named_parameters()}
    for name in ('logit_scale', 'image_encoder.class_embedding', 'image_encoder.positional_embedding',
                 'image_encoder.ln_pre.weight', 'image_encoder.transformer.resblocks.0.attn.in_proj_bias',
                 'text_encoder.bert.embeddings.LayerNorm.weight',
                 'text_encoder.bert.embeddings.position_embeddings.weight'):
        assert name in no_decay['names'], name
    for name in ('image_encoder.conv1.weight', 'image_encoder.proj', 'text_projection',
                 'image_encoder.transformer.resblocks.0.attn.in_proj_weight',
                 'text_encoder.bert.embeddings.word_embeddings.weight'):
        assert name in decay['names'], name
    # A parameter frozen at build time trains once unlocked.
    model.unlock_image_tower()
    before = model.image_encoder.conv1.weight.detach().clone()
    model.image_encoder.conv1.weight.sum().backward()
    wrapper.step()
    assert not torch.equal(before, model.image_encoder.conv1.weight)


def test_paramwise_options(tiny_model_cfg):
    model = MODELS.build(tiny_model_cfg)
    groups = _build(model, no_decay_keys=[], decay_1d=True).optimizer.param_groups
    assert len(groups) == 1
    with pytest.raises(KeyError, match='unknown paramwise_cfg keys'):
        _build(model, custom_keys={})


def test_autocast_wrapper_runs_bf16_on_cpu():
    lin = torch.nn.Linear(4, 4)
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(lin.parameters(), lr=0.1))
    assert isinstance(wrapper, OptimWrapper) and wrapper.device_type == 'cpu'
    with wrapper.optim_context(lin):
        out = lin(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().pow(2).mean())
    with pytest.raises(ValueError, match='bfloat16 or float16'):
        AutocastOptimWrapper(optimizer=torch.optim.SGD(lin.parameters(), lr=0.1), dtype='int8')


def test_groups_follow_the_original_shapes_of_fsdp_shards():
    # FSDP (use_orig_params) hands the constructor flat 1-D shards under prefixed names; the wrapper's
    # original_shapes decide the groups, so a sharded weight keeps its decay.
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self._fsdp_wrapped_module = torch.nn.Linear(3, 4)
            self._fsdp_wrapped_module.weight = torch.nn.Parameter(torch.zeros(12))
            self.original_shapes = {'weight': torch.Size([4, 3]), 'bias': torch.Size([4])}

    groups = _build(Wrapped()).optimizer.param_groups
    assert [g['names'] for g in groups] == [['weight'], ['bias']]
    assert [g['weight_decay'] for g in groups] == [0.2, 0.0]
    model = Wrapped()
    del model.original_shapes['bias']
    with pytest.raises(KeyError, match="'bias' has no recorded original shape"):
        _build(model)
