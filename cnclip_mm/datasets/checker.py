"""Walk the datasets of a config and report counts, broken items and caption-length statistics."""
import copy
from typing import Dict, List, Optional, Sequence

import numpy as np

from cnclip_mm.registry import DATASETS

from .bad_samples import BadSampleError
from .base import BadSampleAwareDataset
from .hooks import iter_bad_sample_datasets
from .progress import progress
from .transforms.text import TokenizeText

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
UNK_ID = 100
UNK_WARN = 0.05  # real Chinese captions stay far below this with the official vocab


def _skip_bad_samples(cfg: dict) -> dict:
    """Set ``on_bad_sample='skip'`` wherever the dataset type supports it, so loading goes on."""
    cfg = copy.deepcopy(cfg)
    if 'datasets' in cfg:  # ConcatDataset
        cfg['datasets'] = [_skip_bad_samples(sub) for sub in cfg['datasets']]
        return cfg
    if 'dataset' in cfg:  # RepeatDataset / ClassBalancedDataset
        cfg['dataset'] = _skip_bad_samples(cfg['dataset'])
        return cfg
    cls = DATASETS.get(cfg['type']) if isinstance(cfg.get('type'), str) else cfg.get('type')
    if isinstance(cls, type) and issubclass(cls, BadSampleAwareDataset):
        cfg['on_bad_sample'] = 'skip'
    return cfg


def _stats(values: List[int]) -> Dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values)
    return dict(min=int(arr.min()), mean=round(float(arr.mean()), 2), p95=int(round(float(np.percentile(arr, 95)))),
                max=int(arr.max()))


def check_one(dataset, limit: Optional[int] = None, show_progress: bool = True) -> dict:
    """Run every item (or the first ``limit``) of each leaf dataset through its pipeline."""
    report = dict(items=0, images=0, texts=0, broken=[], skipped_at_load=0, load_examples=[])
    chars, tokens, truncated, unknown, unk_examples = [], [], 0, 0, []
    for ds in list(iter_bad_sample_datasets(dataset)) or [dataset]:
        report['skipped_at_load'] += getattr(ds, 'num_skipped_at_load', 0)
        report['load_examples'] += getattr(ds, 'load_examples', [])
        tokenizers = [t for t in getattr(ds.pipeline, 'transforms', []) if isinstance(t, TokenizeText)]
        n = len(ds) if limit is None else min(limit, len(ds))
        with progress(n, getattr(ds, 'name', type(ds).__name__), show_progress) as bar:
            for idx in range(n):
                bar.update()
                try:
                    info = ds.get_data_info(idx)
                    packed = ds.pipeline(info)
                except BadSampleError as err:
                    report['broken'].append((idx, str(err)))
                    continue
                report['items'] += 1
                sample = packed['data_samples'] if isinstance(packed, dict) else None
                report['images'] += int(isinstance(packed, dict) and packed.get('inputs') is not None)
                text = sample.metainfo.get('text') if sample is not None else None
                if text is not None:
                    report['texts'] += 1
                    chars.append(len(text))
                if sample is not None and 'text_ids' in sample:
                    tokens.append(int((sample.text_ids != 0).sum()))
                    unk = int((sample.text_ids == UNK_ID).sum())
                    unknown += unk
                    if unk and len(unk_examples) < 5:
                        unk_examples.append(text)
        truncated += sum(t.num_truncated for t in tokenizers)
    # Share of [UNK] among the caption word pieces ([CLS]/[SEP] excluded): high means a wrong vocab.
    pieces = sum(tokens) - 2 * len(tokens)
    report.update(caption_chars=_stats(chars), caption_tokens=_stats(tokens), truncated=truncated,
                  unk_share=round(unknown / pieces, 4) if pieces > 0 else 0.0, unk_examples=unk_examples)
    return report


def check_dataset(cfg, loaders: Sequence[str] = LOADERS, limit: Optional[int] = None,
                  show_progress: bool = True) -> Dict[str, dict]:
    """Build each named dataloader's dataset from ``cfg`` (skip policy) and :func:`check_one` it."""
    from cnclip_mm.utils import share_tokenizer
    share_tokenizer(cfg)  # the config's one tokenizer, as training would use it
    reports = {}
    for name in loaders:
        loader = cfg.get(name)
        if not loader or 'dataset' not in loader:
            continue
        dataset = DATASETS.build(_skip_bad_samples(loader['dataset']))
        reports[name] = dict(check_one(dataset, limit, show_progress), dataset_items=len(dataset))
    return reports
