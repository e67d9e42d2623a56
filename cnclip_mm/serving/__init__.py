"""Embeddings service on FastAPI + uvicorn (extra ``[serve]``): ``create_app`` over an
:class:`EmbeddingService` (model, batcher, limits, index); started by tools/serve.py."""
from .app import create_app
from .batcher import Batcher
from .encoder import Encoder
from .errors import InputError
from .limits import Limits
from .server import ServerThread
from .service import EmbeddingService

__all__ = ['create_app', 'Batcher', 'Encoder', 'InputError', 'Limits', 'ServerThread', 'EmbeddingService']
