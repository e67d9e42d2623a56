"""The text tower reads nothing back from the device: it runs under fake tensors and on the meta device, and
``torch.compile(fullgraph=True)`` traces forward and backward without graph breaks across text lengths."""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._subclasses.fake_tensor import FakeTensorMode

from cnclip_mm.models.text_encoders import ChineseBertEncoder

ARCH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def tiny_bert(**kwargs):
    torch.manual_seed(0)
    return ChineseBertEncoder(arch=ARCH, vocab_size=300, **kwargs)


def padded_ids(length: int, n: int = 3) -> torch.Tensor:
    ids = torch.randint(103, 300, (n, length), generator=torch.Generator().manual_seed(length))
    ids[:, 0] = 101
    ids[1:, length // 2:] = 0  # rows with padding beside a full one
    return ids


@pytest.mark.parametrize('checkpointing', [False, True])
def test_forward_backward_under_fake_tensors(checkpointing):
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        bert = tiny_bert(grad_checkpointing=checkpointing).train()  # parameters made as fake tensors
        ids = mode.from_tensor(padded_ids(9))
        out = bert(ids)
        out.square().sum().backward()  # a host read would raise DataDependentOutputException here
    assert out.shape == (3, 32)
    assert all(p.grad is not None and p.grad.shape == p.shape for p in bert.parameters())


def test_forward_backward_on_the_meta_device():
    with torch.device('meta'):
        bert = tiny_bert().train()
        ids = torch.zeros(4, 11, dtype=torch.long)
    out = bert(ids)
    out.sum().backward()
    assert out.device.type == 'meta' and out.shape == (4, 32)
    assert bert.bert.encoder.layer[0].attention.self.query.weight.grad.device.type == 'meta'


@pytest.mark.parametrize('training', [True, False])
def test_compiles_fullgraph_across_lengths(training, device):
    torch._dynamo.reset()
    bert = tiny_bert().to(device).train(training)
    counter = CompileCounterWithBackend('aot_eager')
    compiled = torch.compile(bert, fullgraph=True, backend=counter)  # a graph break raises
    for length in (8, 16, 24):
        ids = padded_ids(length).to(device)
        out = compiled(ids)
        if training:
            out.square().sum().backward()
        else:
            torch.testing.assert_close(out, bert(ids), atol=1e-5, rtol=1e-5)
    # the first length static, then one graph with a dynamic length for the others
    assert counter.frame_count <= 2, counter.frame_count
    torch._dynamo.reset()
