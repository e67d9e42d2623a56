"""Web demo (Gradio, extra ``[demo]``): zero-shot classification, Chinese text->image and image->image search.

    python tools/demo/app.py cn-clip_vit-b-16 --gallery data/my_photos          # a model name: downloaded once
    python tools/demo/app.py clip_cn_vit-b-16.pt --gallery data/my_photos --port 7860
    python tools/demo/app.py clip_cn_vit-b-16.pt --index photos.index --gallery data/my_photos   # an index

Serves on 127.0.0.1 by default (--host 0.0.0.0 to expose it).
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Chinese CLIP web demo')
    parser.add_argument('model', help='model name (cnclip_mm.apis.list_models), checkpoint path or URL')
    parser.add_argument('--config', help='model config (default: the named model\'s, or inferred from the '
                        'checkpoint)')
    parser.add_argument('--gallery', help='folder / *_imgs.tsv / glob of images to search (with --index: '
                        'the thumbnails of its matches)')
    parser.add_argument('--index', help='vector index made by this model (tools/index/build_index.py) to search')
    parser.add_argument('--templates', help='zero-shot templates: imagenet, cifar100 or a file')
    parser.add_argument('--vocab-file', help='tokenizer vocabulary override')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=None, help='default: the first free port from 7860')
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    from mmengine.registry import init_default_scope

    from cnclip_mm.apis import load_model
    from cnclip_mm.apis.web_demo import build_demo
    init_default_scope('cnclip_mm')
    model = load_model(args.model, args.config, device=args.device, vocab_file=args.vocab_file)
    return build_demo(model, gallery=args.gallery, templates=args.templates, index=args.index)


def main(argv: Optional[List[str]] = None, block: bool = True):
    """Start the server; with ``block=False`` return ``(demo, local_url)`` (tests close it)."""
    args = parse_args(argv)
    demo = build(args)
    from cnclip_mm.apis.web_demo import launch
    _, url, _ = launch(demo, server_name=args.host, server_port=args.port, prevent_thread_lock=not block,
                       quiet=not block)
    return demo, url


if __name__ == '__main__':
    main()
