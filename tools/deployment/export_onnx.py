"""Export the image and text towers of a Chinese CLIP to ONNX, validated with onnxruntime at export time.

    python tools/deployment/export_onnx.py cn-clip_vit-b-16 --out-dir work_dirs/onnx_vit-b-16
    python tools/deployment/export_onnx.py configs/zeroshot_cifar100_rn50.py clip_cn_rn50.pt --out-dir D --precision fp16
    python tools/deployment/export_onnx.py cn-clip_vit-b-16 --out-dir work_dirs/onnx_vit-b-16_int8 --precision int8

Writes image.onnx, text.onnx (dynamic batch; dynamic text length up to the context length) and meta.json.
Needs the ``[deploy]`` extra (onnx, onnxruntime).
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

PRECISIONS = ('fp32', 'fp16', 'int8')  # cnclip_mm.deployment.onnx_export.PRECISIONS, without its imports for --help


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    parser = argparse.ArgumentParser(description='Export Chinese CLIP towers to ONNX')
    parser.add_argument('model', help='model name (cnclip_mm.apis.list_models) or config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint path / URL / model name; default: the named '
                        "model's released weights")
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='fp16: weights stored in float16, compute stays float32; int8: onnxruntime '
                        "dynamic quantisation (int8 MatMul weights, activations quantised per call)")
    parser.add_argument('--opset', type=int, default=None, help='ONNX opset (default 17)')
    parser.add_argument('--vocab-file', help='tokenizer vocabulary override')
    parser.add_argument('--no-validate', action='store_true', help='skip the onnxruntime vs PyTorch check')
    args = parser.parse_args(argv)

    from mmengine.registry import init_default_scope

    from cnclip_mm.apis import get_model
    from cnclip_mm.deployment import export_towers
    from cnclip_mm.deployment.onnx_export import DEFAULT_OPSET
    init_default_scope('cnclip_mm')
    model = get_model(args.model, pretrained=args.checkpoint or True, vocab_file=args.vocab_file)
    paths = export_towers(model, args.out_dir, opset=args.opset or DEFAULT_OPSET, precision=args.precision,
                          validate=not args.no_validate)
    if 'report' in paths:
        what = 'max |diff|' if args.precision == 'fp32' else 'min cosine'
        print('validated against PyTorch (batch 1 and 7, short to full-context texts): ' +
              ', '.join(f'{kind} {what} {value:.7f}' for kind, value in paths['report'].items()))
    print(f'wrote {paths["image"]}, {paths["text"]}')
    return paths


if __name__ == '__main__':
    main()
