"""Image and text features of a config's test set, saved as .npy with jsonl ids.

    python tools/analysis/extract_features.py configs/retrieval_flickr30k-cn_vit-b-16.py ckpt.pt \
        --out-dir work_dirs/feats_flickr

Writes image_feats.npy [I, D] + image_ids.jsonl ({"image_id": ..}) and text_feats.npy [T, D] +
text_ids.jsonl ({"text_id": .., "image_ids": [ground truth]}); rows are L2-normalised float32.
Items without an image_id (zero-shot sets) are named by their dataset index and keep gt_label.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def extract(model, dataloader) -> Dict[str, list]:
    """Run predict mode over ``dataloader``; returns features and id records per modality."""
    from tqdm import tqdm
    out = dict(image_feats=[], image_ids=[], text_feats=[], text_ids=[])
    model.eval()
    with torch.no_grad():
        for batch in tqdm(dataloader, desc='features', unit='batch'):
            samples = model.test_step(batch)
            for s in samples:
                if 'image_feat' in s:
                    rec = {'image_id': _plain(s.get('image_id', s.get('sample_idx')))}
                    if 'gt_label' in s:
                        rec['gt_label'] = _plain(s.gt_label)
                    out['image_feats'].append(s.image_feat.float().cpu())
                    out['image_ids'].append(rec)
                if 'text_feat' in s:
                    out['text_feats'].append(s.text_feat.float().cpu())
                    out['text_ids'].append({'text_id': _plain(s.get('text_id', s.get('sample_idx'))),
                                            'image_ids': [_plain(i) for i in (s.get('gt_image_ids') or [])]})
    return out


def save(result: Dict[str, list], out_dir: str) -> List[str]:
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for kind in ('image', 'text'):
        feats = result[f'{kind}_feats']
        if not feats:
            continue
        np.save(osp.join(out_dir, f'{kind}_feats.npy'), torch.stack(feats).numpy())
        with open(osp.join(out_dir, f'{kind}_ids.jsonl'), 'w', encoding='utf-8') as f:
            for rec in result[f'{kind}_ids']:
                f.write(json.dumps(rec, ensure_ascii=False) + '\n')
        written += [f'{kind}_feats.npy', f'{kind}_ids.jsonl']
    return written


def main(argv: Optional[List[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description='Extract image/text features of a test set')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='any format the converters know (official, HF, mmpretrain, own)')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch')
    parser.add_argument('--onnx-dir', help='onnxruntime: exported towers (exported there first if absent)')
    args = parser.parse_args(argv)

    init_default_scope('cnclip_mm')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    from mmengine.runner import Runner

    from cnclip_mm.models.builder import init_model
    from cnclip_mm.models.zoo import resolve_weights
    model = init_model(cfg, resolve_weights(args.checkpoint), device=args.device)
    if args.backend == 'onnxruntime':
        from cnclip_mm.deployment import ort_backend_for, route_features
        route_features(model, ort_backend_for(model, args.onnx_dir))
    dataloader = Runner.build_dataloader(cfg.test_dataloader)
    written = save(extract(model, dataloader), args.out_dir)
    if not written:
        raise RuntimeError(f'{args.config}: the test set produced no features')
    print(f'wrote {", ".join(written)} to {args.out_dir}')
    return [osp.join(args.out_dir, name) for name in written]


if __name__ == '__main__':
    main()
