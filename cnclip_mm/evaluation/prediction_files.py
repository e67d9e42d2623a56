"""Official prediction / ground-truth jsonl files and recall computed from them.

Formats (official Chinese-CLIP):
* text->image predictions: ``{"text_id": 8428, "image_ids": [1076345, ...]}`` (ranked, best first);
* image->text predictions: ``{"image_id": 1076345, "text_ids": [8428, ...]}``;
* ground truth: the ``{split}_texts.jsonl`` file (``{"text_id", "text", "image_ids"}``), or for
  image->text the transformed ``{"image_id", "text_ids"}`` file.
"""
import json
from collections import defaultdict
from typing import Dict, Hashable, Iterator, List, Sequence, Tuple


def iter_jsonl(path: str) -> Iterator[Tuple[int, dict]]:
    """Yield ``(line_number, record)``; a bad line raises naming the file and line."""
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path} line {lineno}: invalid JSON ({err.msg})') from None
            if not isinstance(record, dict):
                raise ValueError(f'{path} line {lineno}: expected a JSON object, got {type(record).__name__}')
            yield lineno, record


def read_mapping(path: str, key: str, values: str) -> Dict[Hashable, List[Hashable]]:
    """``{record[key]: record[values]}`` from a jsonl file; missing keys or duplicates raise."""
    out: Dict[Hashable, List[Hashable]] = {}
    for lineno, rec in iter_jsonl(path):
        for name in (key, values):
            if name not in rec:
                raise KeyError(f'{path} line {lineno}: no {name!r} field (has {sorted(rec)})')
        if not isinstance(rec[values], list):
            raise ValueError(f'{path} line {lineno}: {values!r} must be a list')
        if rec[key] in out:
            raise ValueError(f'{path} line {lineno}: duplicate {key} {rec[key]!r}')
        out[rec[key]] = list(rec[values])
    if not out:
        raise ValueError(f'{path}: no records')
    return out


def detect_direction(path: str) -> str:
    """'t2i' for ``text_id``/``image_ids`` records, 'i2t' for ``image_id``/``text_ids``."""
    for lineno, rec in iter_jsonl(path):
        if 'text_id' in rec and 'image_ids' in rec:
            return 't2i'
        if 'image_id' in rec and 'text_ids' in rec:
            return 'i2t'
        raise ValueError(f'{path} line {lineno}: expected text_id + image_ids or image_id + text_ids fields')
    raise ValueError(f'{path}: no records')


def invert(mapping: Dict[Hashable, Sequence[Hashable]]) -> Dict[Hashable, List[Hashable]]:
    """text_id -> image_ids into image_id -> text_ids."""
    out: Dict[Hashable, List[Hashable]] = defaultdict(list)
    for src, targets in mapping.items():
        for target in targets:
            out[target].append(src)
    return dict(out)


def recall_from_predictions(predictions: Dict[Hashable, Sequence[Hashable]],
                            ground_truth: Dict[Hashable, Sequence[Hashable]],
                            topk: Sequence[int] = (1, 5, 10), source: str = 'predictions') -> Dict[str, float]:
    """R@k in percent: a query hits at k if any of its ground-truth ids is in its first k predictions.

    Queries without ground truth are skipped (as ``RetrievalRecall`` does); every query with ground
    truth must have a prediction list at least ``max(topk)`` long (or as long as the gallery allows).

    Returns:
        ``{'R@1': .., 'R@5': .., 'R@10': .., 'num_queries': ..}``.
    """
    queries = [q for q, gt in ground_truth.items() if gt]
    if not queries:
        raise ValueError('no query has ground truth')
    missing = [q for q in queries if q not in predictions]
    if missing:
        raise KeyError(f'{source}: no prediction for {len(missing)} queries, e.g. {missing[:5]}')
    hits = dict.fromkeys(topk, 0)
    for q in queries:
        gt = set(ground_truth[q])
        ranked = list(predictions[q])
        for k in topk:
            if gt.intersection(ranked[:k]):
                hits[k] += 1
    out = {f'R@{k}': 100.0 * hits[k] / len(queries) for k in topk}
    out['num_queries'] = len(queries)
    return out
