"""Image and text features of a config's test set, or image features of WebDataset shards for an index.

    python tools/analysis/extract_features.py configs/retrieval_flickr30k-cn_vit-b-16.py ckpt.pt \
        --out-dir work_dirs/feats_flickr
    torchrun --nproc_per_node 8 tools/analysis/extract_features.py ckpt.pt \
        --shards 'data/shards/{00000..01023}.tar' --out-dir work_dirs/gallery_feats --launcher pytorch
    python tools/index/build_index.py ckpt.pt work_dirs/gallery_feats --out gallery.index

Test set: writes image_feats.npy [I, D] + image_ids.jsonl ({"image_id": ..}) and text_feats.npy [T, D] +
text_ids.jsonl ({"text_id": .., "image_ids": [ground truth]}); rows are L2-normalised float32.
Items without an image_id (zero-shot sets) are named by their dataset index and keep gt_label.

--shards: the model is a name or checkpoint (CONFIG CKPT also works); each rank encodes its share of the
shards into one .npz per shard (ids + features + model identity, see cnclip_mm.index.feature_shards),
skipping shards already written; rank 0 removes ids repeated across shards and writes manifest.json.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from cnclip_mm.cli import DictAction  # noqa: E402  (arguments are parsed before torch and mmengine load)


def _plain(value):
    import torch
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def extract(model, dataloader) -> Dict[str, list]:
    import torch
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
    import numpy as np
    import torch
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


def extract_gallery_shards(args: argparse.Namespace) -> List[str]:
    """--shards: this rank's feature shards, then (rank 0, after all ranks) the cross-shard dedup + manifest."""
    import torch
    from mmengine.dist import barrier, get_dist_info, is_main_process

    from cnclip_mm.apis.inferencers import FeatureExtractor
    from cnclip_mm.datasets.webdataset_shards import expand_shards
    from cnclip_mm.index.feature_shards import MANIFEST, extract_shards, finalize
    from cnclip_mm.index.identity import model_identity
    from cnclip_mm.models.zoo import load_model
    if args.launcher == 'pytorch':  # torchrun's env:// variables; gloo on CPU-only machines
        if torch.cuda.is_available():
            args.device = f'cuda:{int(os.environ["LOCAL_RANK"])}'
            torch.cuda.set_device(args.device)
        torch.distributed.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
    rank, world = get_dist_info()
    config, weights = (args.config, args.checkpoint) if args.checkpoint else (None, args.config)
    model = load_model(weights, config, device=args.device)
    extractor = FeatureExtractor(model, backend=args.backend, onnx_dir=args.onnx_dir, batch_size=args.batch_size)
    urls = expand_shards(args.shards)
    extract_shards(extractor.image_features, model_identity(model, weights), urls, args.out_dir, rank, world,
                   args.batch_size)
    barrier()
    if is_main_process():
        counts = finalize(urls, args.out_dir)
        print(f'wrote {len(counts)} feature shards ({sum(counts.values())} images) and {MANIFEST} to '
              f'{args.out_dir}')
    barrier()
    if args.launcher == 'pytorch':
        torch.distributed.destroy_process_group()
    return sorted(osp.join(args.out_dir, name) for name in os.listdir(args.out_dir) if name.endswith('.npz'))


def main(argv: Optional[List[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description='Extract image/text features of a test set, or image features '
                                     'of WebDataset shards (--shards)')
    parser.add_argument('config', help='config file; with --shards: a model name or checkpoint, or a config '
                        'followed by the checkpoint')
    parser.add_argument('checkpoint', nargs='?',
                        help='any format the converters know (official, HF, mmpretrain, own)')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--shards', nargs='+', help='WebDataset .tar shards (globs, brace patterns) of a gallery')
    parser.add_argument('--batch-size', type=int, default=32, help='--shards: images per forward pass')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='--shards: distributed launcher (pytorch: torchrun)')
    parser.add_argument('--device', help='default: cuda when available, else cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch')
    parser.add_argument('--onnx-dir', help='onnxruntime: exported towers (exported there first if absent)')
    args = parser.parse_args(argv)
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    init_default_scope('cnclip_mm')
    if args.shards:
        return extract_gallery_shards(args)
    if not args.checkpoint:
        parser.error('the test-set mode needs CONFIG CHECKPOINT (or give --shards)')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    from cnclip_mm.utils import share_tokenizer
    share_tokenizer(cfg)  # the pipelines tokenise with the config's tokenizer (vocab, context length), as in training
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
