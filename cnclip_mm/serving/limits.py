"""Request limits and their checks: each refusal is a 4xx whose message names the limit and its value."""
import json
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

from .errors import InputError


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (``tools/serve.py --max-...`` flags set them).

    Args:
        max_batch_size: texts or images in one request.
        max_text_chars: characters of one text (class names included).
        max_image_bytes: bytes of one decoded image file (checked before decoding the base64 fully).
        max_image_pixels: width x height of one image, read from its header before the pixels are decoded.
        max_request_bytes: bytes of one request body, refused before the JSON is parsed.
        max_classes: class names in one ``/classify`` request (a new class list costs classes x templates
            text encodings on the model thread).
        max_top_k: results of one ``/search`` or ``/classify`` request.
    """

    max_batch_size: int = 64
    max_text_chars: int = 1000
    max_image_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_request_bytes: int = 64 * 1024 * 1024
    max_classes: int = 100
    max_top_k: int = 100

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'limit {name} must be a positive integer, got {value!r}')

    def check_batch(self, count: int, field: str) -> None:
        if count == 0:
            raise InputError(422, f'{field} is empty: give at least one item', 'empty_input', field)
        if count > self.max_batch_size:
            raise InputError(413, f'{field} holds {count} items, over the limit max_batch_size='
                             f'{self.max_batch_size}', 'batch_too_large', field)

    def check_texts(self, texts: Sequence[str], field: str, indexed: bool = True) -> None:
        """Refuse empty (or blank) texts and texts over ``max_text_chars``, naming the item
        (``field[i]``, or ``field`` alone when ``indexed`` is False)."""
        for i, text in enumerate(texts):
            where = f'{field}[{i}]' if indexed else field
            if not text.strip():
                raise InputError(422, f'{where} is an empty text', 'empty_text', field)
            try:
                text.encode('utf-8')
            except UnicodeEncodeError as err:
                raise InputError(422, f'{where} is not valid Unicode ({err.reason} at character {err.start})',
                                 'invalid_text', field) from None
            if len(text) > self.max_text_chars:
                raise InputError(413, f'{where} has {len(text)} characters, over the limit max_text_chars='
                                 f'{self.max_text_chars}', 'text_too_long', field)

    def top_k(self, top_k: Optional[int], default: int) -> int:
        """``top_k`` checked against ``1..max_top_k``; None: ``default`` (or ``max_top_k`` when lower)."""
        if top_k is None:
            return min(default, self.max_top_k)
        if not 1 <= top_k <= self.max_top_k:
            raise InputError(422, f'top_k={top_k} is outside 1..max_top_k={self.max_top_k}', 'bad_top_k', 'top_k')
        return top_k

    def check_classes(self, classes: Sequence[str]) -> None:
        if not classes:
            raise InputError(422, 'classes is empty: give at least one class name', 'empty_input', 'classes')
        if len(classes) > self.max_classes:
            raise InputError(413, f'classes holds {len(classes)} names, over the limit max_classes='
                             f'{self.max_classes}', 'too_many_classes', 'classes')
        if len(set(classes)) != len(classes):
            raise InputError(422, 'classes holds a name twice', 'duplicate_class', 'classes')
        self.check_texts(classes, 'classes')


class RequestSizeLimit:
    """ASGI middleware: a body over ``max_bytes`` gets a 413 before the app (and its JSON parser) sees it.

    A declared Content-Length is checked first; a chunked body is counted while it is read.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        declared = dict(scope['headers']).get(b'content-length')
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send, int(declared))
        if declared is not None:
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message['type'] != 'http.request':
                break
            chunks.append(message.get('body', b''))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._refuse(send, size)
            if not message.get('more_body', False):
                break
        body = b''.join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {'type': 'http.request', 'body': body, 'more_body': False}

        return await self.app(scope, replay, send)

    async def _refuse(self, send, size: int) -> None:
        error = InputError(413, f'the request body has {size} bytes (or more), over the limit max_request_bytes='
                           f'{self.max_bytes}', 'request_too_large')
        payload = json.dumps(error.body()).encode()
        await send({'type': 'http.response.start', 'status': 413,
                    'headers': [(b'content-type', b'application/json'),
                                (b'content-length', str(len(payload)).encode())]})
        await send({'type': 'http.response.body', 'body': payload})
