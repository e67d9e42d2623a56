"""Top-k predictions from saved features (tools/analysis/extract_features.py), chunked, official jsonl.

    python tools/analysis/topk_predictions.py work_dirs/feats --topk 10 --out predictions.jsonl
    python tools/analysis/topk_predictions.py work_dirs/feats --direction i2t --out i2t.jsonl

Text->image lines: {"text_id": .., "image_ids": [..]}; image->text: {"image_id": .., "text_ids": [..]}.
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def load_features(feat_dir: str, kind: str):
    """``({kind}_feats.npy as a tensor, ids from {kind}_ids.jsonl)``, checked against each other."""
    import numpy as np
    import torch

    from cnclip_mm.evaluation.prediction_files import iter_jsonl
    feats_path = osp.join(feat_dir, f'{kind}_feats.npy')
    ids_path = osp.join(feat_dir, f'{kind}_ids.jsonl')
    for path in (feats_path, ids_path):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} does not exist; write it with tools/analysis/extract_features.py')
    feats = torch.from_numpy(np.load(feats_path))
    ids = []
    for lineno, rec in iter_jsonl(ids_path):
        if f'{kind}_id' not in rec:
            raise KeyError(f'{ids_path} line {lineno}: no {kind}_id field')
        ids.append(rec[f'{kind}_id'])
    if len(ids) != len(feats):
        raise ValueError(f'{ids_path} has {len(ids)} ids for {len(feats)} rows of {feats_path}')
    return feats, ids


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description='Top-k retrieval predictions from saved features')
    parser.add_argument('feat_dir', help='folder with image_feats.npy, image_ids.jsonl, text_feats.npy, text_ids.jsonl')
    parser.add_argument('--out', required=True, help='predictions jsonl to write')
    parser.add_argument('--topk', type=int, default=10)
    parser.add_argument('--direction', choices=['t2i', 'i2t'], default='t2i')
    parser.add_argument('--chunk-size', type=int, help='query rows per similarity block')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    from cnclip_mm.evaluation.functional import chunked_topk
    image_feats, image_ids = load_features(args.feat_dir, 'image')
    text_feats, text_ids = load_features(args.feat_dir, 'text')
    if args.direction == 't2i':
        query, gallery, q_ids, g_ids, q_key, g_key = text_feats, image_feats, text_ids, image_ids, 'text_id', 'image_ids'
    else:
        query, gallery, q_ids, g_ids, q_key, g_key = image_feats, text_feats, image_ids, text_ids, 'image_id', 'text_ids'
    _, indices = chunked_topk(query, gallery, args.topk, chunk_size=args.chunk_size, device=args.device,
                              progress=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        for q, row in zip(q_ids, indices.tolist()):
            f.write(json.dumps({q_key: q, g_key: [g_ids[i] for i in row]}, ensure_ascii=False) + '\n')
    print(f'wrote {len(q_ids)} {args.direction} predictions (top {min(args.topk, len(g_ids))}) to {args.out}')
    return args.out


if __name__ == '__main__':
    main()
