"""Fixtures of the service tests: one tiny model and one server on 127.0.0.1 (port 0) per module."""
import sys
from pathlib import Path

import httpx
import pytest
import torch
from mmengine.registry import init_default_scope

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_fixtures import API_KEY, LIMITS, TINY_CONFIG  # noqa: E402

from cnclip_mm.serving import EmbeddingService, Encoder, ServerThread, create_app  # noqa: E402


@pytest.fixture(scope='session')
def tiny_model():
    from cnclip_mm.apis import init_model
    init_default_scope('cnclip_mm')
    torch.manual_seed(0)
    return init_model(TINY_CONFIG)


@pytest.fixture(scope='module')
def server(tiny_model):
    """The tiny model served with ``LIMITS`` and ``API_KEY``; ``.service`` is the EmbeddingService."""
    service = EmbeddingService(Encoder(tiny_model), name='tiny', limits=LIMITS, max_batch=16, max_wait_s=0.1)
    with ServerThread(create_app(service, api_key=API_KEY)) as running:
        running.service = service
        yield running


@pytest.fixture(scope='module')
def client(server):
    with httpx.Client(base_url=server.url, headers={'Authorization': f'Bearer {API_KEY}'}, timeout=60) as c:
        yield c
