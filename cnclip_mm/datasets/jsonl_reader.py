"""Line-by-line JSON reading that names the file and line of each problem."""
import json
from typing import Iterator, Tuple

from .bad_samples import BadSampleLog


def iter_jsonl(path: str, bad_samples: BadSampleLog) -> Iterator[Tuple[str, dict]]:
    """Yield ``(where, obj)`` for each JSON object line; blank lines are ignored.

    A line that is not a JSON object goes to the bad-sample policy.
    """
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f'{path} line {lineno}'
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                bad_samples.handle(where, f'malformed JSON ({err.msg} at column {err.colno})')
                continue
            if not isinstance(obj, dict):
                bad_samples.handle(where, f'expected a JSON object, got {type(obj).__name__}')
                continue
            yield where, obj
