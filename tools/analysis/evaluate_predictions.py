"""Recall@k from an official predictions jsonl and the ground truth (official file formats).

    python tools/analysis/evaluate_predictions.py data/flickr30k-cn/test_texts.jsonl predictions.jsonl
    python tools/analysis/evaluate_predictions.py test_texts.jsonl i2t_predictions.jsonl --out r.json

Text->image predictions ({"text_id", "image_ids"}) are scored against the texts file; image->text
predictions ({"image_id", "text_ids"}) against the texts file inverted, or a {"image_id", "text_ids"}
ground-truth file. Keys: t2i_R@1 ... or i2t_R@1 ... as in the RetrievalRecall metric, and
``t2i_mean_recall`` / ``i2t_mean_recall``: the mean of one direction's R@k (the metric's ``mean_recall``
averages both directions, so it carries another name).
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def evaluate(ground_truth: str, predictions: str, topk=(1, 5, 10)) -> Dict[str, float]:
    from cnclip_mm.evaluation.prediction_files import (  # imported after argument parsing: --help stays fast
        detect_direction,
        invert,
        read_mapping,
        recall_from_predictions,
    )
    direction = detect_direction(predictions)
    if direction == 't2i':
        gt = read_mapping(ground_truth, 'text_id', 'image_ids')
        preds = read_mapping(predictions, 'text_id', 'image_ids')
    else:
        gt_direction = detect_direction(ground_truth)
        gt = (invert(read_mapping(ground_truth, 'text_id', 'image_ids')) if gt_direction == 't2i'
              else read_mapping(ground_truth, 'image_id', 'text_ids'))
        preds = read_mapping(predictions, 'image_id', 'text_ids')
    recalls = recall_from_predictions(preds, gt, topk, source=predictions)
    out = {f'{direction}_R@{k}': recalls[f'R@{k}'] for k in topk}
    out[f'{direction}_mean_recall'] = sum(out.values()) / len(topk)
    out['num_queries'] = recalls['num_queries']
    return out


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description='Recall@k of a predictions file')
    parser.add_argument('ground_truth', help='{split}_texts.jsonl (or an image_id/text_ids file for i2t)')
    parser.add_argument('predictions', help='predictions jsonl (text_id/image_ids or image_id/text_ids)')
    parser.add_argument('--topk', type=int, nargs='+', default=[1, 5, 10])
    parser.add_argument('--out', help='also write the result as JSON here')
    args = parser.parse_args(argv)
    result = evaluate(args.ground_truth, args.predictions, tuple(args.topk))
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
