"""The image towers are plain modules: hooks see every layer, wrappers and adapters change the features,
dynamic quantization converts every Linear."""
import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from cnclip_mm.models.backbones import CLIPVisionTransformer, ModifiedResNet

LAYERS = (nn.Linear, nn.Conv2d)


def tiny_vit():
    torch.manual_seed(0)
    return CLIPVisionTransformer(arch=dict(width=32, layers=2, heads=2, patch_size=8), img_size=32, output_dim=16)


def tiny_rn():
    torch.manual_seed(0)
    return ModifiedResNet(arch=dict(layers=(1, 1, 1, 1), width=8), img_size=64, output_dim=16)


TOWERS = {'vit': (tiny_vit, 32), 'rn50': (tiny_rn, 64)}


def images(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize('tower_name', sorted(TOWERS))
@pytest.mark.parametrize('training', [True, False])
def test_forward_hooks_fire_on_every_linear_and_conv(tower_name, training):
    build, size = TOWERS[tower_name]
    tower = build().train(training)
    calls = {}
    for name, module in tower.named_modules():
        if isinstance(module, LAYERS):
            calls[name] = 0
            module.register_forward_hook(lambda m, args, out, name=name: calls.__setitem__(name, calls[name] + 1))
    assert len(calls) >= (7 if tower_name == 'vit' else 20)
    if training:
        tower(images(size)).square().sum().backward()
        # every parameter is in the graph (RN50's zero-initialised bn3 makes some gradients exactly 0)
        no_grad = [n for n, p in tower.named_parameters() if p.grad is None]
        assert no_grad == [], no_grad
    else:
        with torch.no_grad():
            tower(images(size))
    silent = sorted(name for name, count in calls.items() if count == 0)
    assert silent == [], f'modules never called: {silent}'


class LowRankDelta(nn.Module):
    """A layer plus a large low-rank change of its output, as an adapter would add."""

    def __init__(self, base: nn.Module, rank: int = 2):
        super().__init__()
        self.base = base
        conv = isinstance(base, nn.Conv2d)
        self.down = nn.Linear(base.out_channels if conv else base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_channels if conv else base.out_features, bias=False)
        nn.init.normal_(self.up.weight, std=10.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if isinstance(self.base, nn.Conv2d):  # the delta acts on each patch's output channels
            return out + self.up(self.down(out.movedim(1, -1))).movedim(-1, 1)
        return out + self.up(self.down(x))


@pytest.mark.parametrize('target', ['conv1', 'transformer.resblocks.0.mlp.c_fc', 'transformer.resblocks.1.mlp.c_fc',
                                    'transformer.resblocks.1.mlp.c_proj', 'transformer.resblocks.1.attn.out_proj'])
def test_vit_wrapped_layer_changes_the_features(target):
    vit = tiny_vit().eval()
    x = images(32)
    with torch.no_grad():
        before = vit(x)
        wrapper = LowRankDelta(vit.get_submodule(target))
        vit.set_submodule(target, wrapper)
        after = vit(x)
        assert (after - before).abs().max() > 1e-2
        nn.init.zeros_(wrapper.up.weight)  # zero delta: the features of the unwrapped tower again
        torch.testing.assert_close(vit(x), before, atol=1e-6, rtol=1e-6)


def test_vit_peft_lora_changes_features_and_trains_only_adapters():
    vit = tiny_vit().train()
    x = images(32)
    with torch.no_grad():
        before = vit(x)
    targets = ['mlp.c_fc', 'mlp.c_proj', 'attn.out_proj']
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False, lora_dropout=0.0)
    vit = inject_adapter_in_model(config, vit)
    wrapped = [name for name, module in vit.named_modules() if hasattr(module, 'lora_A')]
    assert len(wrapped) == len(targets) * vit.layers, wrapped
    after = vit(x)
    assert (after.detach() - before).abs().max() > 1e-3
    after.square().sum().backward()
    with_grad = {name for name, p in vit.named_parameters() if p.grad is not None}
    lora = {name for name, p in vit.named_parameters() if 'lora_' in name}
    assert with_grad == lora and len(lora) == 2 * len(wrapped)
    assert all(vit.get_parameter(name).grad.any() for name in lora)


def test_vit_quantize_dynamic_converts_every_linear():
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    vit = tiny_vit().eval()
    x = images(32)
    with torch.no_grad():
        ref = vit(x)
    linears = [name for name, module in vit.named_modules() if type(module) is nn.Linear]
    assert len(linears) == 3 * vit.layers
    quantized = torch.ao.quantization.quantize_dynamic(vit, {nn.Linear}, dtype=torch.qint8)
    converted = [name for name, module in quantized.named_modules() if isinstance(module, DynamicLinear)]
    assert converted == linears
    assert not any(type(module) is nn.Linear for module in quantized.modules())
    with torch.no_grad():
        out = quantized(x)
    assert out.shape == ref.shape and not torch.equal(out, ref)  # int8 products really ran
    assert torch.nn.functional.cosine_similarity(out, ref).min() > 0.99


def test_quick_gelu_is_x_sigmoid_1702x_forward_backward_and_under_vmap():
    from cnclip_mm.models.backbones.vit import QuickGELU
    x = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    ref = x.detach().clone().requires_grad_()
    out, expected = QuickGELU()(x), ref * torch.sigmoid(1.702 * ref)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x.grad, ref.grad)
    assert torch.autograd.gradcheck(QuickGELU(), (x.detach().requires_grad_(),))
    torch.testing.assert_close(torch.func.vmap(QuickGELU())(x.detach()), expected.detach())


def test_traced_tower_saves_and_loads_as_a_torchscript_archive(tmp_path):
    tower = tiny_vit().eval()
    x = images(32)
    traced = torch.jit.trace(tower, (x,))
    torch.jit.save(traced, str(tmp_path / 'vit.pt'))
    torch.testing.assert_close(torch.jit.load(str(tmp_path / 'vit.pt'))(x), tower(x))
