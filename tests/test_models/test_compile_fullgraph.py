"""``torch.compile(fullgraph=True)`` takes both towers and a whole train step without a graph break, and
the number of graphs stays bounded over steps whose captions differ in length.

Backend ``aot_eager`` (AOTAutograd's forward and backward graphs run by eager kernels): it traces what
inductor would, without a C++ toolchain. ``fullgraph=True`` turns any graph break into an error; the break
counter is checked as well. ``clip_collate`` trims the ids to multiples of 8, so over a 52-token context a
text shape is one of 7 buckets: under dynamo's recompile limit even with static shapes.
"""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

from cnclip_mm.registry import MODELS
from tests.test_models.tiny_batches import CONTEXT, pair_batch

# Caption tokens per step: the collate trims the ids to 8, 16, 24, 8, 32 and 16 columns.
STEPS = [(5, 7, 6, 3), (12, 9, 4, 15), (20, 3, 3, 5), (6, 6, 6, 6), (30, 10, 8, 9), (14, 11, 5, 5)]
WIDTHS = [8, 16, 24, 8, 32, 16]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _model(cfg: dict):
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _batches(model, training: bool):
    return [model.data_preprocessor(pair_batch(lengths, seed=i), training=training)['inputs']
            for i, lengths in enumerate(STEPS)]


def _graph_breaks() -> int:
    return sum(counters['graph_break'].values())


def test_the_steps_cover_several_text_widths(tiny_model_cfg):
    batches = _batches(_model(tiny_model_cfg), training=False)
    assert [b['text_ids'].shape[1] for b in batches] == WIDTHS
    limit = getattr(torch._dynamo.config, 'recompile_limit', None) or torch._dynamo.config.cache_size_limit
    assert -(-CONTEXT // 8) <= limit  # every bucket of the context fits in the recompile limit


def test_each_tower_compiles_whole_with_one_graph_per_text_width(tiny_model_cfg):
    model = _model(tiny_model_cfg).eval()
    image_counter, text_counter = CompileCounterWithBackend('aot_eager'), CompileCounterWithBackend('aot_eager')
    image_tower = torch.compile(model.image_encoder, backend=image_counter, fullgraph=True)
    # Static shapes: one graph per width the collate produces, nothing more.
    text_tower = torch.compile(model.text_encoder, backend=text_counter, fullgraph=True, dynamic=False)
    with torch.no_grad():
        for inputs in _batches(model, training=False):
            torch.testing.assert_close(image_tower(inputs['images']), model.image_encoder(inputs['images']))
            torch.testing.assert_close(text_tower(inputs['text_ids']), model.text_encoder(inputs['text_ids']))
    assert _graph_breaks() == 0, dict(counters['graph_break'])
    assert image_counter.frame_count == 1
    assert text_counter.frame_count == len(set(WIDTHS))


def test_a_whole_train_step_compiles_without_breaks_and_recompiles_once(tiny_model_cfg):
    """Features, loss and backward (AOTAutograd's compiled backward) in one graph; the optimizer stays eager.

    Dynamo compiles the first width statically and, at the second, one graph with a dynamic width that
    serves the rest: 2 graphs for 6 steps of 4 widths. The same seed gives the eager step's losses (the
    compiled graph draws the same dropout masks in the same order).
    """
    def run(compiled: bool):
        model = _model(tiny_model_cfg).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        batches = _batches(model, training=True)

        def loss_fn(inputs):
            return model(inputs, mode='loss')['loss']

        counter = CompileCounterWithBackend('aot_eager')
        step = torch.compile(loss_fn, backend=counter, fullgraph=True) if compiled else loss_fn
        torch.manual_seed(1)
        losses = []
        for inputs in batches:
            loss = step(inputs)
            if compiled:
                assert type(loss.grad_fn).__name__ == 'CompiledFunctionBackward'
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        return torch.stack(losses), counter.frame_count

    compiled_losses, frames = run(compiled=True)
    assert _graph_breaks() == 0, dict(counters['graph_break'])
    assert frames == 2
    eager_losses, _ = run(compiled=False)
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-4, atol=1e-5)
