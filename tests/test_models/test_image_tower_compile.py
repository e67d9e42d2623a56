"""``torch.compile(fullgraph=True)`` traces the image towers' forward and backward as one graph, no breaks."""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

from cnclip_mm.models.backbones import CLIPVisionTransformer, ModifiedResNet


def build(tower: str, checkpointing: bool):
    torch.manual_seed(0)
    if tower == 'vit':
        return CLIPVisionTransformer(arch=dict(width=32, layers=2, heads=2, patch_size=8), img_size=32,
                                     output_dim=16, grad_checkpointing=checkpointing), 32
    return ModifiedResNet(arch=dict(layers=(1, 1, 1, 1), width=8), img_size=64, output_dim=16), 64


@pytest.mark.parametrize('tower,checkpointing', [('vit', False), ('vit', True), ('rn50', False)])
def test_image_tower_compiles_fullgraph_forward_and_backward(tower, checkpointing):
    model, size = build(tower, checkpointing)
    model.eval()  # eager and compiled runs see the same BatchNorm statistics
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    eager = model(x)
    eager_grads = torch.autograd.grad(eager.square().sum(), list(model.parameters()))
    if tower == 'vit':
        model.train()  # the checkpointed path runs in training mode (the ViT has no mode-dependent layer)
    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend('aot_eager')
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    out = compiled(x)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    assert backend.frame_count == 1 and not counters['graph_break'], dict(counters['graph_break'])
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, eager_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    compiled(torch.randn(2, 3, size, size))  # a second batch of the same shape reuses the graph
    assert backend.frame_count == 1
