"""The text tower is plain modules: hooks see every Linear, a wrapper or a LoRA adapter changes the features,
dynamic quantization converts every Linear."""
import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from cnclip_mm.models.text_encoders import ChineseBertEncoder

LAYERS = 2


def tiny_bert():
    torch.manual_seed(0)
    return ChineseBertEncoder(arch=dict(hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=2,
                                        intermediate_size=64), vocab_size=300)


def ids():
    return torch.tensor([[101, 5, 6, 7, 8, 102], [101, 9, 102, 0, 0, 0], [101, 11, 12, 102, 0, 0]])


@pytest.mark.parametrize('training', [True, False])
def test_forward_hooks_fire_on_every_linear(training):
    bert = tiny_bert().train(training)
    calls = {}
    for name, module in bert.named_modules():
        if isinstance(module, nn.Linear):
            calls[name] = 0
            module.register_forward_hook(lambda m, args, out, name=name: calls.__setitem__(name, calls[name] + 1))
    assert len(calls) == 6 * LAYERS
    if training:
        bert(ids()).square().sum().backward()
        no_grad = [n for n, p in bert.named_parameters() if p.grad is None]
        assert no_grad == [], no_grad
    else:
        with torch.no_grad():
            bert(ids())
    assert {name: count for name, count in calls.items() if count != 1} == {}


class PlusDelta(nn.Module):
    """A Linear plus a second Linear's output, as an adapter would add."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.delta = nn.Linear(base.in_features, base.out_features)
        nn.init.normal_(self.delta.weight, std=10.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.delta(x)


@pytest.mark.parametrize('target', ['embeddings.word_embeddings'] + [
    f'encoder.layer.{LAYERS - 1}.{name}' for name in ('attention.self.query', 'attention.self.key',
                                                      'attention.self.value', 'attention.output.dense',
                                                      'intermediate.dense', 'output.dense')])
def test_wrapped_layer_changes_the_features(target):
    bert = tiny_bert().eval()
    path = f'bert.{target}'
    with torch.no_grad():
        before = bert(ids())
        base = bert.get_submodule(path)
        if isinstance(base, nn.Embedding):
            wrapper = nn.Sequential(base, nn.Linear(32, 32))
            nn.init.normal_(wrapper[1].weight, std=1.0)
        else:
            wrapper = PlusDelta(base)
        bert.set_submodule(path, wrapper)
        assert (bert(ids()) - before).abs().max() > 1e-2
        if isinstance(wrapper, PlusDelta):  # zero delta: the features of the unwrapped tower again
            nn.init.zeros_(wrapper.delta.weight), nn.init.zeros_(wrapper.delta.bias)
            torch.testing.assert_close(bert(ids()), before, atol=1e-6, rtol=1e-6)


def test_peft_lora_on_query_and_value_changes_features_and_trains_only_adapters():
    bert = tiny_bert().train()
    for module in bert.modules():  # deterministic features in training mode
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    with torch.no_grad():
        before = bert(ids())
    config = LoraConfig(r=4, lora_alpha=8, target_modules=['query', 'value'], init_lora_weights=False,
                        lora_dropout=0.0)
    bert = inject_adapter_in_model(config, bert)
    wrapped = [name for name, module in bert.named_modules() if hasattr(module, 'lora_A')]
    assert len(wrapped) == 2 * LAYERS, wrapped
    after = bert(ids())
    assert (after.detach() - before).abs().max() > 1e-3
    after.square().sum().backward()
    with_grad = {name for name, p in bert.named_parameters() if p.grad is not None}
    lora = {name for name, p in bert.named_parameters() if 'lora_' in name}
    assert with_grad == lora and len(lora) == 2 * len(wrapped)
    assert all(bert.get_parameter(name).grad.any() for name in lora)


def test_quantize_dynamic_converts_every_linear():
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    bert = tiny_bert().eval()
    with torch.no_grad():
        ref = bert(ids())
    linears = [name for name, module in bert.named_modules() if type(module) is nn.Linear]
    assert len(linears) == 6 * LAYERS
    quantized = torch.ao.quantization.quantize_dynamic(bert, {nn.Linear}, dtype=torch.qint8)
    converted = [name for name, module in quantized.named_modules() if isinstance(module, DynamicLinear)]
    assert converted == linears
    with torch.no_grad():
        out = quantized(ids())
    assert out.shape == ref.shape and not torch.equal(out, ref)  # int8 products really ran
    assert torch.nn.functional.cosine_similarity(out, ref).min() > 0.99
