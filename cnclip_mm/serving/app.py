"""The FastAPI app: routes, the optional API key, and every client mistake answered as a 4xx JSON error."""
import base64
import hmac
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import List, Optional

import orjson
import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .errors import InputError
from .limits import RequestSizeLimit
from .schemas import ClassifyRequest, EmbeddingsRequest, SearchRequest, as_list
from .service import EmbeddingService


def create_app(service: EmbeddingService, api_key: Optional[str] = None) -> FastAPI:
    """The app serving ``service``; its batcher starts and stops with the app.

    Args:
        service: the model, batcher, limits and index.
        api_key: when set, every endpoint but ``/health`` needs ``Authorization: Bearer <api_key>``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title='Chinese CLIP embeddings', lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(RequestSizeLimit, max_bytes=service.limits.max_request_bytes)
    app.state.service = service
    limits = service.limits

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get('authorization', '')
        scheme, _, token = header.partition(' ')
        if scheme.lower() != 'bearer' or not token:
            raise InputError(401, 'this server needs an API key: send the header "Authorization: Bearer <key>"',
                             'missing_api_key')
        if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise InputError(401, 'wrong API key in the Authorization header', 'invalid_api_key')

    @app.exception_handler(InputError)
    async def input_error(request: Request, err: InputError):
        headers = {'WWW-Authenticate': 'Bearer'} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        return JSONResponse(*_validation_body(err.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        error = InputError(err.status_code, f'{request.method} {request.url.path}: {err.detail}', 'http_error')
        return JSONResponse(error.body(), status_code=err.status_code, headers=getattr(err, 'headers', None))

    @app.get('/health')
    async def health():
        return dict(status='ok', **service.encoder.describe(service.name),
                    index=_index_info(service.index),
                    batching=dict(max_batch=service.batcher.max_batch,
                                  max_wait_ms=service.batcher.max_wait_s * 1000, **service.batcher.stats.as_dict()),
                    limits=asdict(limits), api_key_required=api_key is not None)

    @app.post('/v1/embeddings', dependencies=[Depends(authorize)])
    async def embeddings(body: EmbeddingsRequest):
        if body.input is not None:
            texts = as_list(body.input)
            limits.check_batch(len(texts), 'input')
            limits.check_texts(texts, 'input', indexed=isinstance(body.input, list))
            feats, tokens = await service.embed_texts(texts)
            items = list(feats)
        else:
            images = as_list(body.images)
            limits.check_batch(len(images), 'images')
            items = _all_or_some(await service.embed_images(images, 'images'))
            tokens = 0
        data = [_item_error(i, item) if isinstance(item, InputError) else
                {'object': 'embedding', 'index': i, 'embedding': _encode(item, body.encoding_format)}
                for i, item in enumerate(items)]
        return _FastJSON({'object': 'list', 'data': data, 'model': service.name,
                             'usage': {'prompt_tokens': tokens, 'total_tokens': tokens}})

    @app.post('/classify', dependencies=[Depends(authorize)])
    async def classify(body: ClassifyRequest):
        images = as_list(body.images)
        limits.check_batch(len(images), 'images')
        limits.check_classes(body.classes)
        top_k = limits.top_k(body.top_k, default=5)
        results = _all_or_some(await service.classify(images, body.classes, min(top_k, len(body.classes))))
        data = [_item_error(i, res) if isinstance(res, InputError) else
                {'object': 'classification', 'index': i, 'class': res['pred_class'], 'label': res['pred_label'],
                 'score': res['pred_score'],
                 'top_k': [{'class': c, 'label': label, 'score': s} for c, label, s in
                           zip(res['topk_classes'], res['topk_labels'], res['topk_scores'])],
                 'scores': res['pred_scores']}
                for i, res in enumerate(results)]
        return JSONResponse({'object': 'list', 'data': data, 'model': service.name, 'classes': body.classes})

    @app.post('/search', dependencies=[Depends(authorize)])
    async def search(body: SearchRequest):
        if service.index is None:
            raise InputError(404, 'this server has no index: start tools/serve.py with --index INDEX',
                             'no_index')
        top_k = limits.top_k(body.top_k, default=10)
        if body.text is not None:
            limits.check_texts([body.text], 'text', indexed=False)
            query = (await service.embed_texts([body.text]))[0][0]
        else:
            query = _all_or_some(await service.embed_images([body.image], 'image'))[0]
        matches = await service.search(query, top_k)
        return JSONResponse({'object': 'list', 'model': service.name,
                             'query': 'text' if body.text is not None else 'image', 'results': matches})

    return app


class _FastJSON(Response):
    """JSON written by orjson, numpy arrays included: an embedding leaves as float32 text without a
    detour through Python floats (several times faster than ``json`` for 512-d float lists)."""

    media_type = 'application/json'

    def render(self, content) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _all_or_some(items: list) -> list:
    """Items with per-item errors; when every item failed, the request fails with their messages."""
    errors = [item for item in items if isinstance(item, InputError)]
    if errors and len(errors) == len(items):
        if len(errors) == 1:
            raise errors[0]
        raise InputError(errors[0].status, '; '.join(err.message for err in errors), errors[0].kind,
                         errors[0].param)
    return items


def _item_error(index: int, err: InputError) -> dict:
    return {'object': 'error', 'index': index, 'error': err.body()['error']}


def _encode(row: torch.Tensor, encoding_format: str):
    if encoding_format == 'base64':
        return base64.b64encode(row.numpy().astype('<f4').tobytes()).decode('ascii')
    return row.numpy()


def _index_info(index) -> Optional[dict]:
    if index is None:
        return None
    return dict(size=len(index), kind=index.kind, source=(index.meta.get('model') or {}).get('source'))


def _validation_body(errors: List[dict]):
    """``(body, status)``: 400 for a body that is not JSON, else 422 naming every field at fault."""
    for error in errors:
        if error.get('type') == 'json_invalid':
            ctx = error.get('ctx') or {}
            reason = ctx.get('error', error.get('msg'))
            return InputError(400, f'the request body is not valid JSON ({reason}, at character '
                              f'{error["loc"][-1]})', 'invalid_json').body(), 400
    problems = []
    for error in errors:
        loc = [str(part) for part in error.get('loc', ()) if part != 'body']
        where = '.'.join(loc) if loc else 'the request body'
        if error.get('type') == 'missing':
            problems.append(f'{where}: required field missing' if loc else
                            'the request body is missing: send a JSON object')
        elif not loc and error.get('type') in ('model_attributes_type', 'dict_type'):
            problems.append('the request body must be a JSON object, sent with Content-Type: application/json')
        elif error.get('type') == 'extra_forbidden':
            problems.append(f'{where}: unknown field')
        else:
            problems.append(f'{where}: {error.get("msg")}')
    return InputError(422, '; '.join(problems), 'invalid_request_error').body(), 422
