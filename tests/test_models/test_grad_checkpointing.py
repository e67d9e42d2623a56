"""Gradient checkpointing recomputes every ViT block and every BERT layer in backward, and changes no gradient.

Counted with forward pre-hooks: a layer's hook fires once per training step without checkpointing and twice
with it (forward, then the recomputation in backward). Pre-hooks, because torch's non-reentrant checkpoint
stops the recomputation as soon as the tensors backward needs exist, so the end of the layer's forward, where
post-forward hooks fire, is never reached again. The text tower is the project's own BERT, so the
switch does not depend on which transformers release is installed (transformers 4.40 up to the release
that added ``GradientCheckpointingLayer`` kept the flag where per-layer code never read it).
"""
import ast
import contextlib
from collections import Counter
from pathlib import Path

import pytest
import torch

import cnclip_mm.models.text_encoders as text_encoders
from cnclip_mm.cpu import CpuFastPaths, onednn
from cnclip_mm.registry import MODELS
from tests.test_models.tiny_batches import pair_batch

LENGTHS = (5, 12, 9, 20)


def _layers(model) -> dict:
    blocks = model.image_encoder.transformer.resblocks
    layers = model.text_encoder.bert.encoder.layer
    named = {f'vit.{i}': block for i, block in enumerate(blocks)}
    named.update({f'bert.{i}': layer for i, layer in enumerate(layers)})
    return named


def _step(cfg: dict, checkpointing: bool):
    """Hook counts per layer and the gradients of one training step (dropout on, same seed)."""
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    model.set_grad_checkpointing(checkpointing)
    calls = Counter()
    for name, module in _layers(model).items():
        module.register_forward_pre_hook(lambda *_, name=name: calls.update([name]))
    batch = model.data_preprocessor(pair_batch(LENGTHS), training=True)
    torch.manual_seed(1)
    loss = model(**batch, mode='loss')['loss']
    forward_calls = dict(calls)
    loss.backward()
    return forward_calls, dict(calls), {name: p.grad for name, p in model.named_parameters()}


@pytest.mark.parametrize('checkpointing, per_step', [(False, 1), (True, 2)])
def test_every_layer_of_both_towers_is_recomputed_when_checkpointing(tiny_model_cfg, checkpointing, per_step):
    forward_calls, step_calls, _ = _step(tiny_model_cfg, checkpointing)
    names = ['vit.0', 'vit.1', 'bert.0', 'bert.1']
    assert forward_calls == dict.fromkeys(names, 1)
    assert step_calls == dict.fromkeys(names, per_step)


@pytest.mark.parametrize('cpu_paths', [False, True])
def test_checkpointing_gives_the_same_gradients(tiny_model_cfg, cpu_paths, monkeypatch):
    """The recomputation replays the forward's dropout masks (saved RNG state): same gradients. Under a torch
    function mode around the model (cpu_speed's, every path taken), the recomputation runs under it too, so
    it takes the forward's paths and saves the same tensors."""
    monkeypatch.setattr(onednn, 'MIN_MACS', 0)
    with CpuFastPaths() if cpu_paths else contextlib.nullcontext():
        _, _, plain = _step(tiny_model_cfg, checkpointing=False)
        _, _, recomputed = _step(tiny_model_cfg, checkpointing=True)
    assert plain.keys() == recomputed.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, msg=lambda m, name=name: f'{name}: {m}')


def test_no_recomputation_outside_training(tiny_model_cfg):
    model = MODELS.build(tiny_model_cfg).eval()
    model.set_grad_checkpointing(True)
    calls = Counter()
    for name, module in _layers(model).items():
        module.register_forward_pre_hook(lambda *_, name=name: calls.update([name]))
    batch = model.data_preprocessor(pair_batch(LENGTHS))
    with torch.no_grad():
        model(batch['inputs'], mode='tensor')
    assert set(calls.values()) == {1}


def test_the_text_tower_does_not_use_transformers():
    """Why the counts hold on every transformers release the requirements allow: the tower never imports it."""
    package = Path(text_encoders.__file__).parent
    imported = set()
    for path in package.glob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                imported.update((alias.name, path.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add((node.module, path.name))
    assert not [(name, file) for name, file in imported if name.split('.')[0] == 'transformers']
