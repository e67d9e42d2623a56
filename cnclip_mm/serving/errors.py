"""The one error type of the service: a client mistake with its HTTP status, answered as OpenAI's error body."""
from typing import Optional


class InputError(Exception):
    """Bad input or an exceeded limit, answered with ``status`` (always 4xx) and a message naming the problem.

    Args:
        status: the HTTP status (400 malformed, 401 auth, 413 over a limit, 422 invalid field).
        message: what is wrong, naming the field / item and the limit.
        kind: a short machine-readable name (``'image_too_large'``, ``'invalid_json'``, ...).
        param: the request field at fault, when there is one.
    """

    def __init__(self, status: int, message: str, kind: str = 'invalid_request_error',
                 param: Optional[str] = None) -> None:
        if not 400 <= status < 500:
            raise ValueError(f'InputError is for client errors (4xx), got status {status}')
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param

    def body(self) -> dict:
        """``{"error": {"message", "type", "param", "code"}}`` (OpenAI's error shape)."""
        return {'error': {'message': self.message, 'type': self.kind, 'param': self.param, 'code': self.status}}
