"""Build, extend or prune a vector index of a gallery's image features (extra ``[index]``).

    python tools/index/build_index.py cn-clip_vit-b-16 data/my_photos --out work_dirs/photos.index
    python tools/index/build_index.py ckpt.pt 'data/shards/{00000..00127}.tar' --out shop.index
    python tools/index/build_index.py ckpt.pt valid_imgs.tsv --out muge.index --delete 1076345 517602
    python tools/index/build_index.py ckpt.pt 'work_dirs/feats/*.npz' --out big.index   # extract_features.py

GALLERY: a folder, a glob, an official ``*_imgs.tsv``, WebDataset ``.tar`` shards (brace patterns work) or
``.npz`` feature shards from tools/analysis/extract_features.py. Rerunning adds only the images not indexed
yet, so a killed build resumes where its last save (every ``--save-every`` images) left off. The index
records the model and preprocessing that made it and refuses another model.
"""
import argparse
import logging
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Build or update a vector index of gallery images')
    parser.add_argument('model', help='model name (cnclip_mm.apis.list_models), checkpoint path or URL')
    parser.add_argument('gallery', nargs='*', help='folder / glob / *_imgs.tsv / .tar shards / .npz feature '
                        'shards (none: only --delete)')
    parser.add_argument('--out', required=True, help='index folder (created, or extended when it exists)')
    parser.add_argument('--config', help='model config (default: the named model\'s or the checkpoint\'s)')
    parser.add_argument('--delete', nargs='+', default=[], metavar='ID', help='ids to remove')
    parser.add_argument('--delete-file', help='a file with one id to remove per line')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--save-every', type=int, default=1024, help='images between saves (resume points)')
    parser.add_argument('--exact-max', type=int,
                        help='vectors up to which search is exact; approximate (IVF) beyond (new index only; '
                        'default: cnclip_mm.index.EXACT_MAX)')
    parser.add_argument('--nprobe', type=int, help='IVF lists probed per query (default: nlist/16, >= 16)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch')
    parser.add_argument('--onnx-dir', help='onnxruntime: exported towers (exported there first if absent)')
    parser.add_argument('--vocab-file', help='tokenizer vocabulary override')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def load_model(args: argparse.Namespace):
    from mmengine.registry import init_default_scope

    from cnclip_mm.apis import load_model
    init_default_scope('cnclip_mm')
    return load_model(args.model, args.config, device=args.device, vocab_file=args.vocab_file)


def main(argv: Optional[List[str]] = None):
    """Returns the saved :class:`~cnclip_mm.index.VectorIndex`."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')  # the exact -> IVF switch, the summary
    logging.getLogger('faiss').setLevel(logging.WARNING)  # not which CPU build of faiss loaded
    from cnclip_mm.index import EXACT_MAX, build_index, model_identity, open_index
    exact_max = EXACT_MAX if args.exact_max is None else args.exact_max
    delete = list(args.delete)
    if args.delete_file:
        with open(args.delete_file, encoding='utf-8') as f:
            delete += [line.strip() for line in f if line.strip()]
    model = load_model(args)
    if not args.gallery:
        if not delete:
            raise SystemExit('give a GALLERY to add, or --delete / --delete-file ids to remove')
        index = open_index(args.out)
        index.check_model(model_identity(model, args.model))
        print(f'{args.out}: {index.delete(delete)} of {len(delete)} ids deleted, {len(index)} vectors left')
        index.save()
        return index
    gallery = args.gallery[0] if len(args.gallery) == 1 else args.gallery
    index = build_index(model, gallery, args.out, source=args.model, batch_size=args.batch_size,
                        save_every=args.save_every, exact_max=exact_max, nprobe=args.nprobe, delete=delete,
                        backend=args.backend, progress=not args.no_progress, onnx_dir=args.onnx_dir)
    return index


if __name__ == '__main__':
    main()
