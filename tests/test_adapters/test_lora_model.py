"""LoRA through peft on the model: official keys, only adapters train (with AMP, accumulation and the tower
lock), merging gives the adapted features, clear errors for bad config blocks."""

import copy

import pytest
import torch
from mmengine.optim import OptimWrapper

from cnclip_mm.engine import AutocastOptimWrapper
from cnclip_mm.models.adapters import adapter_state_dict, is_adapter_key, merge_adapters
from cnclip_mm.registry import MODELS
from tests.conftest import TINY_MODEL
from tests.test_adapters.conftest import LORA, lora_model_cfg
from tests.test_models.tiny_batches import pair_batch

LENGTHS = (12, 30, 7, 52)


def build(cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg))


@pytest.fixture(scope='module')
def base():
    return build(TINY_MODEL).eval()


def adapted(base, trained_adapters: bool = True, **adapters):
    """The tiny model with ``base``'s weights and LoRA; random non-zero adapters when ``trained_adapters``."""
    model = build(lora_model_cfg(**adapters), seed=1)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(is_adapter_key(k) for k in missing)
    if trained_adapters:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if 'lora_B' in name:
                    param.normal_(std=0.2)
    return model


def features(model):
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    ids = pair_batch((9, 20, 52))['text_ids']
    with torch.no_grad():
        return model.eval().extract_image_feat(images), model.extract_text_feat(ids)


def test_keys_are_the_official_ones_plus_adapters_and_fresh_adapters_change_nothing(base):
    model = adapted(base, trained_adapters=False)
    keys = list(model.state_dict())
    assert [k for k in keys if not is_adapter_key(k)] == list(base.state_dict())
    wrapped = {k.rsplit('.lora_', 1)[0] for k in keys if is_adapter_key(k)}
    assert (
        len(wrapped) == 2 * 4 + 2 * 6
    )  # per ViT block: in_proj, out_proj, c_fc, c_proj; per BERT layer: 6
    assert not any('base_layer' in k for k in keys)
    for ours, ref in zip(features(model), features(base)):
        torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)  # LoRA starts with B = 0
    assert all(p.requires_grad == is_adapter_key(n) for n, p in model.named_parameters())


def _step(model, wrapper_cls=OptimWrapper, **kwargs):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train().train_step(pair_batch(LENGTHS), wrapper_cls(optimizer=optimizer, **kwargs))
    return {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}


@pytest.mark.parametrize('amp', [False, True])
def test_a_step_changes_the_adapters_alone(base, amp):
    model = adapted(base)
    changed = _step(model, AutocastOptimWrapper, dtype='bfloat16') if amp else _step(model)
    adapters = {k for k in model.state_dict() if is_adapter_key(k)}
    # Every other tensor is bit-identical; lora_A only moves once B != 0, so all adapters do here.
    assert changed == adapters


def test_trainable_extras_and_feature_cache_accumulation(base):
    model = adapted(
        base, image=LORA['image'], text=dict(LORA['text'], dropout=0.0), trainable=['logit_scale']
    )
    model.text_encoder.bert.config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    accumulating = copy.deepcopy(model)
    accumulating.accum_freq = 2

    def grads(m):
        captured = {}
        wrapper = OptimWrapper(
            optimizer=torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0)
        )
        wrapper.step = lambda **kw: captured.update(
            {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        )
        m.train().train_step(pair_batch(LENGTHS), wrapper)
        return captured

    ref, got = grads(model), grads(accumulating)
    assert (
        set(ref)
        == set(got)
        == {n for n, _ in model.named_parameters() if is_adapter_key(n)} | {'logit_scale'}
    )
    for name, grad in ref.items():
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=0, msg=name)


def test_tower_lock_freezes_the_adapters_of_that_tower_and_unlock_never_frees_the_base(base):
    model = adapted(base)
    model.lock_image_tower()
    changed = _step(model)
    assert changed and all(k.startswith('text_encoder.') and is_adapter_key(k) for k in changed)
    model.lock_image_tower(
        unlocked_groups=2
    )  # last block + ln_post/proj: only that block's adapters train
    trainable = {
        n for n, p in model.named_parameters() if p.requires_grad and n.startswith('image_encoder.')
    }
    assert trainable and all(is_adapter_key(n) and '.resblocks.1.' in n for n in trainable)
    model.unlock_image_tower()
    model.lock_text_tower()
    changed = _step(model)
    assert changed and all(k.startswith('image_encoder.') and is_adapter_key(k) for k in changed)
    model.unlock_text_tower()
    assert all(p.requires_grad == is_adapter_key(n) for n, p in model.named_parameters())


def test_merge_gives_the_adapted_features_and_the_plain_layout(base):
    model = adapted(base)
    expected = features(model)
    merge_adapters(model)
    assert sorted(model.state_dict()) == sorted(base.state_dict())
    assert not any(is_adapter_key(n) for n, _ in model.named_parameters())
    for ours, ref in zip(features(model), expected):
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    for ours, ref in zip(features(model), features(base)):
        assert (ours - ref).abs().max() > 1e-3  # the adapters really moved the weights


def test_adapter_state_is_a_small_part_of_the_model(base):
    model = adapted(base)
    small = adapter_state_dict(model)
    full = model.state_dict()
    assert set(small) == {k for k in full if is_adapter_key(k)}
    size = sum(v.numel() * v.element_size() for v in small.values())
    assert size * 20 < sum(v.numel() * v.element_size() for v in full.values())


@pytest.mark.parametrize(
    'adapters, message',
    [
        (
            dict(image=dict(LORA['image'], type='IA3')),
            r"model.adapters.image.type: 'IA3' is not supported",
        ),
        (dict(text=dict(r=4)), 'model.adapters.text: name the layers to adapt'),
        (dict(text=dict(LORA['text'], rank=4)), r'model.adapters.text: .*rank'),
        (dict(text=dict(target_modules=['no_such_layer'])), 'model.adapters.text: .*no_such_layer'),
        (dict(image=dict(LORA['image'], dropout=0.1)), 'model.adapters.image: .*lora_dropout'),
        (dict(vision=LORA['image']), r"unknown keys \['vision'\]"),
        (dict(text=LORA['text'], trainable=['temperature']), "'temperature' is not a parameter"),
    ],
)
def test_bad_blocks_name_the_key(adapters, message):
    with pytest.raises(ValueError, match=message):
        build(lora_model_cfg(**adapters))
