"""Line-by-line JSON reading that names the file and line of each problem."""
import json
from typing import Iterator, Tuple

from .bad_samples import BadSampleLog


def iter_jsonl(path: str, bad_samples: BadSampleLog) -> Iterator[Tuple[str, dict]]:
    """Yield ``(where, obj)`` for each JSON object line; blank lines are ignored.

    A line that is not UTF-8 or not a JSON object goes to the bad-sample policy.
    """
    with open(path, 'rb') as f:  # decoded per line, so a bad byte names its line
        for lineno, raw in enumerate(f, 1):
            where = f'{path} line {lineno}'
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError as err:
                bad_samples.handle(where, f'not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})')
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                bad_samples.handle(where, f'malformed JSON ({err.msg} at column {err.colno})')
                continue
            if not isinstance(obj, dict):
                bad_samples.handle(where, f'expected a JSON object, got {type(obj).__name__}')
                continue
            yield where, obj
