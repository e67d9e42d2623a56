"""From cosine similarity to a probability of "this image and this text match" (Platt scaling).

A CLIP cosine is a ranking score: contrastive training only asks a matching pair to beat the other pairs
of its batch, so its absolute value carries no probability (an unrelated image often still scores 0.3-0.4,
a good match 0.5). Platt scaling fits ``p = sigmoid(a * cosine + b)`` on labelled pairs; the fitted file is
JSON data, tied to the weights and context length it was fitted for (docs/calibration.md).
"""
import hashlib
import json
import math
import os
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

FORMAT = 'cnclip-calibration'
VERSION = 1
ECE_BINS = 15
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


def _array(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def fit_platt(scores: ArrayLike, labels: ArrayLike, max_iter: int = 100) -> Dict[str, float]:
    """``a, b`` minimising the logistic loss of ``sigmoid(a * score + b)`` against the labels (Newton).

    Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` keep ``a`` finite when the scores
    separate the classes.

    Args:
        scores: cosine similarities ``[N]``.
        labels: 1 for a matching pair, 0 otherwise ``[N]``.
        max_iter: Newton steps at most.

    Returns:
        ``{'a': ..., 'b': ...}``.
    """
    s, y = _array(scores), _array(labels)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f'scores {s.shape} and labels {y.shape} must be two vectors of one length')
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    if positives + negatives != len(y):
        raise ValueError('labels must be 0 (no match) or 1 (match)')
    if not positives or not negatives:
        raise ValueError(f'fitting needs matching and non-matching pairs, got {positives} and {negatives}')
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(w):
        z = w[0] * s + w[1]
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    w = np.array([0.0, math.log((positives + 1) / (negatives + 1))])
    for _ in range(max_iter):
        p = _sigmoid(w[0] * s + w[1])
        grad = np.array([np.sum((p - target) * s), np.sum(p - target)])
        h = p * (1 - p)
        hess = np.array([[np.sum(h * s * s), np.sum(h * s)], [np.sum(h * s), np.sum(h)]]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        rate, current = 1.0, loss(w)
        while loss(w - rate * step) > current and rate > 1e-8:  # backtrack: never increase the loss
            rate /= 2
        w = w - rate * step
        if np.max(np.abs(rate * step)) < 1e-10:
            break
    return dict(a=float(w[0]), b=float(w[1]))


def reliability_bins(probs: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> Dict[str, np.ndarray]:
    """Per equal-width probability bin: pair count, mean predicted probability, share of matches."""
    p, y = np.clip(_array(probs), 0.0, 1.0), _array(labels)
    index = np.minimum((p * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    safe = np.maximum(counts, 1)
    return dict(edges=np.linspace(0.0, 1.0, bins + 1), counts=counts,
                confidence=np.bincount(index, weights=p, minlength=bins) / safe,
                accuracy=np.bincount(index, weights=y, minlength=bins) / safe)


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> float:
    """``sum_bins (n_bin / N) * |share of matches - mean probability|`` over equal-width bins.

    Raw cosines are scored as they are (clipped to [0, 1]), the way users read them.
    """
    table = reliability_bins(probs, labels, bins)
    return float(np.sum(table['counts'] * np.abs(table['accuracy'] - table['confidence'])) / table['counts'].sum())


def precision_thresholds(probs: ArrayLike, labels: ArrayLike,
                         targets: Sequence[float] = (0.5, 0.8, 0.9, 0.95, 0.99)) -> list:
    """For each target precision, the lowest threshold whose kept pairs (``prob >= t``) reach it, with the
    recall there; ``None`` when no threshold does."""
    p, y = _array(probs), _array(labels)
    order = np.argsort(-p, kind='stable')
    p, y = p[order], y[order]
    kept_matches = np.cumsum(y)
    precision = kept_matches / np.arange(1, len(p) + 1)
    last = np.r_[p[1:] != p[:-1], True]  # a threshold keeps every pair with an equal probability
    rows = []
    for target in targets:
        ok = np.nonzero(last & (precision >= target))[0]
        if len(ok):
            i = ok[-1]
            rows.append(dict(precision=float(target), threshold=float(p[i]),
                             recall=float(kept_matches[i] / max(y.sum(), 1))))
        else:
            rows.append(dict(precision=float(target), threshold=None, recall=0.0))
    return rows


def model_identity(model: nn.Module) -> Dict[str, object]:
    """What a calibration depends on: the weights (per-tensor shape and sum, computed on the CPU) and the
    tokenizer's context length (longer captions change text features)."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            total = float(tensor.detach().cpu().double().sum())
            digest.update(f'{name}{tuple(tensor.shape)}{total:.10e}'.encode())
    tokenizer = getattr(model, 'tokenizer', None)
    return dict(fingerprint=digest.hexdigest(), context_length=getattr(tokenizer, 'context_length', None))


class Calibration:
    """A fitted Platt mapping ``p = sigmoid(a * cosine + b)`` with the model identity it belongs to.

    Args:
        a: slope on the cosine.
        b: offset.
        model: :func:`model_identity` of the model the pairs were scored with (plus e.g. its checkpoint).
        info: anything else worth keeping (pair counts, held-out errors, thresholds).
    """

    method = 'platt'

    def __init__(self, a: float, b: float, model: Optional[dict] = None, info: Optional[dict] = None):
        self.a, self.b = float(a), float(b)
        self.model = dict(model or {})
        self.info = dict(info or {})

    def __call__(self, scores: Union[torch.Tensor, np.ndarray, float]):
        """Probabilities of the cosines ``scores``, in the input's type (tensor, array or float)."""
        if isinstance(scores, torch.Tensor):
            return torch.sigmoid(self.a * scores.double() + self.b).to(scores.dtype if scores.is_floating_point()
                                                                      else torch.float32)
        probs = _sigmoid(self.a * _array(scores) + self.b)
        return float(probs) if np.ndim(scores) == 0 else probs

    def to_dict(self) -> dict:
        return dict(format=FORMAT, version=VERSION, method=self.method, score='cosine',
                    params=dict(a=self.a, b=self.b), model=self.model, info=self.info)

    def save(self, path: str) -> str:
        """Write the JSON file (never pickle); returns ``path``."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=False)
            f.write('\n')
        return path

    @classmethod
    def load(cls, path: str, model: Optional[nn.Module] = None) -> 'Calibration':
        """Read a file written by :meth:`save`; with ``model``, check it is the model the file was fitted for.

        Raises:
            ValueError: naming the file and the key that is missing, mistyped or does not match.
        """
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'calibration file {path}: not JSON ({err})') from err
        if not isinstance(data, dict):
            raise ValueError(f'calibration file {path}: expected a JSON object, got {type(data).__name__}')

        def need(key, kind, what, value):
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f'calibration file {path}: key "{key}" must be {what}, got {value!r}')
            return value

        if data.get('format') != FORMAT:
            raise ValueError(f'calibration file {path}: key "format" must be {FORMAT!r}, got {data.get("format")!r}')
        if data.get('version') != VERSION:
            raise ValueError(f'calibration file {path}: key "version" is {data.get("version")!r}; this code reads '
                             f'{VERSION}')
        if data.get('method') != cls.method:
            raise ValueError(f'calibration file {path}: key "method" must be {cls.method!r}, got '
                             f'{data.get("method")!r}')
        params = need('params', dict, 'an object', data.get('params'))
        a, b = (need(f'params.{k}', (int, float), 'a number', params.get(k)) for k in ('a', 'b'))
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f'calibration file {path}: keys "params.a" / "params.b" must be finite, got {a}, {b}')
        stored = need('model', dict, 'an object', data.get('model'))
        need('model.fingerprint', str, 'a string', stored.get('fingerprint'))
        calibration = cls(a, b, stored, data.get('info') or {})
        if model is not None:
            calibration.check_model(model, path)
        return calibration

    def check_model(self, model: nn.Module, source: str = 'calibration') -> None:
        """Raise ``ValueError`` unless ``model`` has the weights and context length this was fitted for."""
        current = model_identity(model)
        for key in ('fingerprint', 'context_length'):
            if self.model.get(key) != current[key]:
                raise ValueError(
                    f'{source}: key "model.{key}" is {self.model.get(key)!r} but the model here has '
                    f'{current[key]!r}: the mapping was fitted for other weights or another context length '
                    f'({self.model.get("checkpoint", "checkpoint not recorded")}); fit it again with '
                    'tools/analysis/calibrate.py')


def load_calibration(source: Union[str, os.PathLike, Calibration], model: Optional[nn.Module] = None) -> Calibration:
    """A :class:`Calibration` from a file path (checked against ``model``) or the object itself."""
    if isinstance(source, Calibration):
        if model is not None:
            source.check_model(model)
        return source
    return Calibration.load(os.fspath(source), model)
