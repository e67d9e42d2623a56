"""Fit a mapping from cosine similarity to match probability (Platt scaling) for one model.

    # labelled pairs: one JSON per line {"image": "imgs/1.jpg", "text": "一只猫", "label": 1}
    python tools/analysis/calibrate.py clip_cn_vit-b-16.pt --pairs pairs.jsonl
    # or a retrieval set of a config: its ground-truth pairs plus sampled non-matching images
    python tools/analysis/calibrate.py clip_cn_vit-b-16.pt --config configs/retrieval_flickr30k-cn_vit-b-16.py \
        --retrieval val --negatives 4

Writes ``<checkpoint>.calibration.json`` beside the checkpoint (``calibration.json`` inside a Hugging Face
folder; ``--out`` elsewhere) and a reliability diagram ``<json stem>.reliability.png``; prints the expected
calibration error of the raw cosine and of the mapping on held-out pairs, and the probability threshold for
several precisions. Inferencers take the file as ``calibration=``; docs/calibration.md explains the numbers.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from cnclip_mm.cli import DictAction  # noqa: E402  (arguments are parsed before torch and mmengine load)


def read_pairs(path: str) -> Tuple[List[str], List[str], np.ndarray]:
    """``(image paths, texts, labels)`` of a labelled-pairs jsonl; relative image paths are taken from the
    file's folder. Errors name the line and the key."""
    root = osp.dirname(osp.abspath(path))
    images, texts, labels = [], [], []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f'{path} line {lineno}'
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{where}: not JSON ({err})') from err
            if not isinstance(row, dict):
                raise ValueError(f'{where}: expected an object with "image", "text" and "label"')
            image, text, label = row.get('image'), row.get('text'), row.get('label')
            if not isinstance(image, str) or not image:
                raise ValueError(f'{where}: key "image" must be an image path, got {image!r}')
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'{where}: key "text" must be a non-empty string, got {text!r}')
            if label not in (0, 1) or isinstance(label, float):
                raise ValueError(f'{where}: key "label" must be 1 (match) or 0 (no match), got {label!r}')
            image = image if osp.isabs(image) else osp.join(root, image)
            if not osp.isfile(image):
                raise FileNotFoundError(f'{where}: key "image": file {image} does not exist')
            images.append(image)
            texts.append(text)
            labels.append(int(label))
    if not labels:
        raise ValueError(f'{path} holds no pairs')
    return images, texts, np.asarray(labels, dtype=np.float64)


def pair_scores(model, images: List[str], texts: List[str], batch_size: int = 32) -> np.ndarray:
    """Cosine of each (image, text) pair, every distinct image and text encoded once."""
    from cnclip_mm.apis import FeatureExtractor
    encoder = FeatureExtractor(model, batch_size=batch_size)
    image_rows = {path: i for i, path in enumerate(dict.fromkeys(images))}
    text_rows = {text: i for i, text in enumerate(dict.fromkeys(texts))}
    image_feats = encoder.image_features(list(image_rows))
    text_feats = encoder.text_features(list(text_rows))
    left = image_feats[[image_rows[p] for p in images]]
    right = text_feats[[text_rows[t] for t in texts]]
    return (left * right).sum(dim=-1).double().numpy()


def retrieval_scores(model, cfg, split: str, negatives: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Scores and labels of the config's ``split`` retrieval set (see :func:`retrieval_pairs`)."""
    from mmengine.runner import Runner

    from tools.analysis.extract_features import extract
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        raise KeyError(f'the config has no {split}_dataloader for --retrieval {split}')
    return retrieval_pairs(extract(model, Runner.build_dataloader(loader)), negatives, seed, f'{split}_dataloader')


def retrieval_pairs(out: dict, negatives: int, seed: int, name: str = 'the set') -> Tuple[np.ndarray, np.ndarray]:
    """Every (text, ground-truth image) pair, labelled 1, and ``negatives`` images per text drawn from the
    others, labelled 0, from :func:`extract_features.extract`'s output; returns ``(cosines, labels)``."""
    if not out['image_feats'] or not out['text_feats']:
        raise ValueError(f'{name} gave no image or no text features')
    import torch
    image_feats, text_feats = torch.stack(out['image_feats']), torch.stack(out['text_feats'])
    row_of = {rec['image_id']: i for i, rec in enumerate(out['image_ids'])}
    rng = np.random.default_rng(seed)
    scores, labels = [], []
    for t, rec in enumerate(out['text_ids']):
        positives = sorted({row_of[i] for i in rec['image_ids'] if i in row_of})
        if not positives:
            continue
        others = np.setdiff1d(np.arange(len(image_feats)), positives)
        drawn = rng.choice(others, size=min(negatives, len(others)), replace=False).tolist()
        rows = positives + drawn
        scores += (image_feats[rows] @ text_feats[t]).double().tolist()
        labels += [1.0] * len(positives) + [0.0] * len(drawn)
    if not labels:
        raise ValueError(f'{name}: no text has a ground-truth image among the images')
    return np.asarray(scores), np.asarray(labels)


def default_out(checkpoint: str) -> str:
    """``calibration.json`` inside a folder (Hugging Face), else ``<file stem>.calibration.json`` beside it."""
    if osp.isdir(checkpoint):
        return osp.join(checkpoint, 'calibration.json')
    return osp.splitext(checkpoint)[0] + '.calibration.json'


def fit_and_report(scores: np.ndarray, labels: np.ndarray, holdout: float, seed: int) -> Tuple[dict, dict]:
    """Fit on all but a held-out share; returns ``(a/b, info)`` with the held-out errors and thresholds."""
    order = np.random.default_rng(seed).permutation(len(scores))
    cut = int(round(len(scores) * (1 - holdout))) if holdout > 0 else len(scores)
    fit_rows, eval_rows = order[:cut], (order[cut:] if holdout > 0 else order)
    if len(eval_rows) == 0 or len(np.unique(labels[fit_rows])) < 2:
        raise ValueError(f'{len(scores)} pairs are too few to hold out {holdout:.0%} and still fit both labels')
    from cnclip_mm.evaluation.calibration import (
        Calibration,
        expected_calibration_error,
        fit_platt,
        precision_thresholds,
    )
    params = fit_platt(scores[fit_rows], labels[fit_rows])
    probs = Calibration(**params)(scores[eval_rows])
    info = dict(pairs=int(len(scores)), matching=int(labels.sum()), fitted_on=int(len(fit_rows)),
                evaluated_on=int(len(eval_rows)), held_out=holdout > 0,
                ece_raw_cosine=expected_calibration_error(scores[eval_rows], labels[eval_rows]),
                ece_calibrated=expected_calibration_error(probs, labels[eval_rows]),
                thresholds=precision_thresholds(probs, labels[eval_rows]))
    return params, dict(info, eval_rows=eval_rows)


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description='Fit cosine -> match probability (Platt scaling) for a model')
    parser.add_argument('checkpoint', help='checkpoint (any format the converters know) or a model name')
    parser.add_argument('--config', help='model config (default: inferred from the checkpoint); needed by '
                        '--retrieval')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--pairs', help='labelled pairs, one JSON per line: {"image", "text", "label": 0|1}')
    source.add_argument('--retrieval', choices=['val', 'test'], help="the config's val / test retrieval set")
    parser.add_argument('--negatives', type=int, default=4, help='--retrieval: non-matching images per text')
    parser.add_argument('--holdout', type=float, default=0.25, help='share of pairs kept out of the fit to '
                        'measure it (0: measure on the fitted pairs)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='the JSON file (default: beside the checkpoint)')
    parser.add_argument('--plot', help='reliability diagram PNG (default: <out stem>.reliability.png)')
    parser.add_argument('--context-length', type=int, help="token ids per text (default: the config's)")
    parser.add_argument('--device', help='default: cuda when available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if not 0 <= args.holdout < 1:
        parser.error(f'--holdout must be in [0, 1), got {args.holdout}')
    if args.retrieval and not args.config:
        parser.error('--retrieval needs --config (the dataset to read)')

    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from cnclip_mm.evaluation.calibration import Calibration, model_identity
    from cnclip_mm.models.zoo import is_model_name, load_model, resolve_weights
    init_default_scope('cnclip_mm')
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = None
    if args.config:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        from cnclip_mm.utils import share_tokenizer
        share_tokenizer(cfg)  # the pipelines' TokenizeText get the config's tokenizer, as in training
    weights = resolve_weights(args.checkpoint)
    # a bare name stays a name (its config and vocab); anything else loads the file just resolved (hashed once)
    by_name = cfg is None and is_model_name(args.checkpoint)
    model = load_model(args.checkpoint if by_name else weights, cfg, device=args.device,
                       context_length=args.context_length)

    if args.pairs:
        images, texts, labels = read_pairs(args.pairs)
        scores = pair_scores(model, images, texts)
        fitted_from = dict(pairs=osp.abspath(args.pairs))
    else:
        scores, labels = retrieval_scores(model, cfg, args.retrieval, args.negatives, args.seed)
        fitted_from = dict(config=osp.abspath(args.config), split=args.retrieval, negatives_per_text=args.negatives)
    params, info = fit_and_report(scores, labels, args.holdout, args.seed)
    eval_rows = info.pop('eval_rows')
    identity = dict(model_identity(model), checkpoint=osp.abspath(weights) if osp.exists(weights) else weights)
    calibration = Calibration(params['a'], params['b'], identity, dict(info, source=fitted_from, seed=args.seed))
    out = calibration.save(args.out or default_out(weights))

    from cnclip_mm.visualization.reliability import plot_reliability
    plot = args.plot or osp.splitext(out)[0] + '.reliability.png'
    os.makedirs(osp.dirname(osp.abspath(plot)), exist_ok=True)
    plot_reliability({'raw cosine': scores[eval_rows], 'calibrated': calibration(scores[eval_rows])},
                     labels[eval_rows], plot, title=f'{len(eval_rows)} {"held-out " if args.holdout else ""}pairs')

    where = 'held-out' if args.holdout else 'fitted'
    print(f'p = sigmoid({params["a"]:.4f} * cosine + {params["b"]:.4f}) from {info["fitted_on"]} pairs '
          f'({info["matching"]} of {info["pairs"]} matching)')
    print(f'expected calibration error on {info["evaluated_on"]} {where} pairs: raw cosine '
          f'{info["ece_raw_cosine"]:.4f}, calibrated {info["ece_calibrated"]:.4f}')
    for row in info['thresholds']:
        at = f'p >= {row["threshold"]:.3f} (recall {row["recall"]:.3f})' if row['threshold'] is not None \
            else 'not reached'
        print(f'  precision {row["precision"]:.2f}: {at}')
    if params['a'] <= 0:
        print('warning: the fitted slope is not positive: this model does not score the matching pairs above the '
              'others, so its probabilities carry no information (wrong checkpoint, or labels swapped?)')
    print(f'wrote {out} and {plot}')
    return out


if __name__ == '__main__':
    main()
