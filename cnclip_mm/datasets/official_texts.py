"""Reader of the official ``{split}_texts.jsonl`` (``text_id``, ``text``, ``image_ids``)."""
from typing import Iterator

from .bad_samples import BadSampleLog
from .base_image_text import TextRecord
from .jsonl_reader import iter_jsonl

_FIELDS = ('text_id', 'text', 'image_ids')


def iter_official_texts(path: str, bad_samples: BadSampleLog) -> Iterator[TextRecord]:
    """Yield ``(where, text_id, text, image_ids)``; missing fields go to the bad-sample policy."""
    for where, obj in iter_jsonl(path, bad_samples):
        missing = [k for k in _FIELDS if k not in obj]
        if missing:
            bad_samples.handle(where, f'missing field(s) {missing} (need {list(_FIELDS)})')
            continue
        image_ids = obj['image_ids']
        if not isinstance(image_ids, list):
            bad_samples.handle(where, f'image_ids must be a list, got {image_ids!r}')
            continue
        yield where, obj['text_id'], obj['text'], image_ids
