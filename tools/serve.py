"""Embeddings service (extra ``[serve]``): ``/v1/embeddings``, ``/search``, ``/classify``, ``/health``.

    python tools/serve.py cn-clip_vit-b-16                                  # a model name: downloaded once
    python tools/serve.py clip_cn_vit-b-16.pt --index work_dirs/photos.index --port 8000
    python tools/serve.py ckpt.pth --config configs/_base_/models/vit-b-16.py --backend onnxruntime

Binds 127.0.0.1 by default; ``--api-key`` (or $CNCLIP_API_KEY) makes every endpoint but /health need
``Authorization: Bearer <key>``. See docs/serving.md.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

LIMIT_FLAGS = ('max_batch_size', 'max_text_chars', 'max_image_bytes', 'max_image_pixels', 'max_request_bytes',
               'max_classes', 'max_top_k')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Chinese CLIP embeddings service (FastAPI + uvicorn)')
    parser.add_argument('model', help='model name (cnclip_mm.apis.list_models), checkpoint path or URL')
    parser.add_argument('--config', help="model config (default: the named model's, or inferred from the checkpoint)")
    parser.add_argument('--index', help='vector index folder for POST /search (tools/index/build_index.py)')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch')
    parser.add_argument('--onnx-dir', help='onnxruntime: exported towers (exported there first if absent)')
    parser.add_argument('--templates', help='zero-shot templates for /classify: a built-in set name or a file '
                        '(default: the project default set)')
    parser.add_argument('--vocab-file', help='tokenizer vocabulary override')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind (default: loopback only)')
    parser.add_argument('--port', type=int, default=8000, help='0: any free port (printed at start)')
    parser.add_argument('--api-key', default=os.environ.get('CNCLIP_API_KEY'),
                        help='require "Authorization: Bearer KEY" (default: $CNCLIP_API_KEY; unset: no key)')
    parser.add_argument('--threads', type=int, help='torch intra-op threads of the model (default: one per core '
                        'this process may use, or $OMP_NUM_THREADS)')
    parser.add_argument('--log-level', default='info', choices=['critical', 'error', 'warning', 'info', 'debug'],
                        help="uvicorn's log level ('info' logs every request)")
    parser.add_argument('--max-batch', type=int, default=32, help='most items per model call (1: no batching)')
    parser.add_argument('--max-wait-ms', type=float, default=5.0,
                        help='how long a request waits for others to share its model call')
    for name in LIMIT_FLAGS:
        parser.add_argument('--' + name.replace('_', '-'), type=int,
                            help='request limit (default: cnclip_mm.serving.Limits, see docs/serving.md)')
    return parser.parse_args(argv)


def build_app(args: argparse.Namespace):
    """The FastAPI app for parsed arguments (loads the model, the backend and the index)."""
    from mmengine.registry import init_default_scope

    from cnclip_mm.apis import load_model
    from cnclip_mm.serving import EmbeddingService, Encoder, Limits, create_app
    init_default_scope('cnclip_mm')
    model = load_model(args.model, args.config, device=args.device, vocab_file=args.vocab_file)
    index = None
    if args.index:  # refused unless this model (weights and preprocessing) built it
        from cnclip_mm.index import model_identity, open_index
        index = open_index(args.index)
        index.check_model(model_identity(model, args.model))
    service = EmbeddingService(Encoder(model, args.backend, args.onnx_dir), name=osp.basename(args.model),
                               limits=Limits(**{name: getattr(args, name) for name in LIMIT_FLAGS
                                               if getattr(args, name) is not None}),
                               max_batch=args.max_batch, max_wait_s=args.max_wait_ms / 1000, index=index,
                               templates=args.templates)
    return create_app(service, api_key=args.api_key or None)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads:  # before torch is imported; cnclip_mm.cpu.choose_threads honours it
        os.environ['OMP_NUM_THREADS'] = str(args.threads)
    if args.host not in ('127.0.0.1', 'localhost', '::1') and not args.api_key:
        print(f'warning: serving on {args.host} without an API key: anyone who reaches the port can use it '
              '(set --api-key or $CNCLIP_API_KEY)', file=sys.stderr)
    from cnclip_mm.serving.server import ServerThread
    server = ServerThread(build_app(args), host=args.host, port=args.port, log_level=args.log_level).start()
    print(f'serving {args.model} on {server.url}', flush=True)
    try:
        while server.thread.is_alive():
            server.thread.join(0.5)
    except KeyboardInterrupt:
        server.stop()


if __name__ == '__main__':
    main()
