"""Shared fixtures: paths to the real vocab and a tiny model config usable everywhere."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope

REPO = Path(__file__).resolve().parents[1]

SHARED_VOCAB = REPO.parent / 'shared' / 'data' / 'chinese_bert_vocab' / 'vocab.txt'

TINY_MODEL = dict(
    type='ChineseCLIP',
    embed_dim=32,
    image_encoder=dict(
        type='CLIPVisionTransformer',
        arch=dict(width=64, layers=2, heads=2, patch_size=8),
        img_size=32,
        output_dim=32,
    ),
    text_encoder=dict(
        type='ChineseBertEncoder',
        arch=dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96),
        vocab_size=21128,
    ),
    tokenizer=dict(type='ChineseTokenizer', vocab_file=str(SHARED_VOCAB), context_length=52),
    data_preprocessor=dict(type='CLIPDataPreprocessor'),
)


@pytest.fixture(autouse=True)
def _default_scope():
    init_default_scope('cnclip_mm')


@pytest.fixture(scope='session')
def vocab_file() -> str:
    if not SHARED_VOCAB.is_file():
        raise FileNotFoundError(f'tests need the shared vocab at {SHARED_VOCAB} (../shared beside the repo)')
    return str(SHARED_VOCAB)


@pytest.fixture
def tiny_model_cfg(vocab_file) -> dict:
    return copy.deepcopy(TINY_MODEL)


# Every device the machine has: model, train-step and inference tests are parametrised over these (CUDA joins
# when present, so a GPU machine runs the same tests there; nothing is skipped on a CPU machine).
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
