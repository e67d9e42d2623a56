"""Analysis tools: features -> top-k predictions -> recall agrees with the metric; curves to PNG."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from cnclip_mm.evaluation import RetrievalRecall
from cnclip_mm.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import load_tool, tiny_test_config, write_cifar100, write_retrieval_tsv  # noqa: E402

extract_features = load_tool('analysis/extract_features.py')
topk_predictions = load_tool('analysis/topk_predictions.py')
evaluate_predictions = load_tool('analysis/evaluate_predictions.py')
plot_curves = load_tool('analysis/plot_curves.py')


def test_features_topk_evaluate_agree_with_metric(tmp_path, vocab_file):
    data = write_retrieval_tsv(str(tmp_path / 'coco'), split='test', num_images=7, seed=5)
    cfg = tiny_test_config(tmp_path, 'retrieval_coco-cn_vit-b-16.py', str(tmp_path / 'coco'), vocab_file,
                           retrieval=True)
    torch.manual_seed(1)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(cfg).model).state_dict()), ckpt)
    feat_dir = tmp_path / 'feats'
    extract_features.main([cfg, str(ckpt), '--out-dir', str(feat_dir), '--device', 'cpu'])
    image_feats = torch.from_numpy(np.load(feat_dir / 'image_feats.npy'))
    text_feats = torch.from_numpy(np.load(feat_dir / 'text_feats.npy'))
    assert image_feats.shape[0] == 7 and text_feats.shape[0] == len(data['texts'])
    assert torch.allclose(image_feats.norm(dim=1), torch.ones(7), atol=1e-5)
    texts = [json.loads(line) for line in (feat_dir / 'text_ids.jsonl').read_text().splitlines()]
    assert [t['image_ids'] for t in texts] == [t['image_ids'] for t in data['texts']]

    expected = RetrievalRecall.calculate(image_feats, text_feats, data['image_ids'],
                                         [t['image_ids'] for t in data['texts']])
    gt_file = str(tmp_path / 'coco' / 'test_texts.jsonl')
    for direction in ('t2i', 'i2t'):
        pred = str(tmp_path / f'{direction}.jsonl')
        topk_predictions.main([str(feat_dir), '--out', pred, '--topk', '10', '--direction', direction,
                               '--chunk-size', '3'])
        first = json.loads(Path(pred).read_text().splitlines()[0])
        assert set(first) == ({'text_id', 'image_ids'} if direction == 't2i' else {'image_id', 'text_ids'})
        result = evaluate_predictions.main([gt_file, pred, '--out', str(tmp_path / f'{direction}.json')])
        for k in (1, 5, 10):
            assert result[f'{direction}_R@{k}'] == pytest.approx(expected[f'{direction}_R@{k}'])


def test_extract_features_zeroshot_set(tmp_path, vocab_file):
    labels = [3, 14, 15, 92, 65]
    write_cifar100(str(tmp_path / 'cifar'), labels)
    cfg = tiny_test_config(tmp_path, 'zeroshot_cifar100.py', str(tmp_path / 'cifar'), vocab_file, retrieval=False)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(cfg).model).state_dict()), ckpt)
    written = extract_features.main([cfg, str(ckpt), '--out-dir', str(tmp_path / 'f'), '--device', 'cpu'])
    assert sorted(Path(p).name for p in written) == ['image_feats.npy', 'image_ids.jsonl']
    ids = [json.loads(line) for line in (tmp_path / 'f' / 'image_ids.jsonl').read_text().splitlines()]
    assert ids == [dict(image_id=i, gt_label=label) for i, label in enumerate(labels)]
    assert np.load(tmp_path / 'f' / 'image_feats.npy').shape == (5, 64)


def test_evaluate_predictions_errors(tmp_path):
    gt = tmp_path / 'gt.jsonl'
    gt.write_text('{"text_id": 1, "text": "猫", "image_ids": [5]}\n{"text_id": 2, "text": "狗", "image_ids": [6]}\n')
    pred = tmp_path / 'pred.jsonl'
    pred.write_text('{"text_id": 1, "image_ids": [6, 5]}\n')
    with pytest.raises(KeyError, match='no prediction for 1 queries'):
        evaluate_predictions.main([str(gt), str(pred)])
    pred.write_text('{"text_id": 1, "image_ids": [6, 5]}\n{"text_id": 2, "image_ids": [6]}\n')
    out = evaluate_predictions.main([str(gt), str(pred), '--topk', '1', '2'])
    assert out['t2i_R@1'] == 50.0 and out['t2i_R@2'] == 100.0 and out['t2i_mean_recall'] == 75.0 and 'mean_recall' not in out
    pred.write_text('{"text_id": 1, "image_ids": [6, 5]}\nnot json\n')
    with pytest.raises(ValueError, match='pred.jsonl line 2: invalid JSON'):
        evaluate_predictions.main([str(gt), str(pred)])


def test_plot_curves_writes_pngs(tmp_path):
    vis = tmp_path / 'work' / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = [dict(step=i, loss=3.0 / (i + 1), lr=1e-4, logit_scale=14.0 + i) for i in range(1, 20)]
    lines += [dict(step=10, **{'retrieval/t2i_R@1': 20.0, 'retrieval/mean_recall': 40.0}),
              dict(step=19, **{'retrieval/t2i_R@1': 30.0, 'retrieval/mean_recall': 50.0})]
    (vis / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    written = plot_curves.main([str(tmp_path / 'work'), '--out-dir', str(tmp_path / 'curves')])
    names = sorted(Path(p).name for p in written)
    assert names == ['logit_scale.png', 'loss.png', 'metrics.png']
    assert all(Path(p).stat().st_size > 2000 for p in written)
    with pytest.raises(FileNotFoundError, match='no vis_data/scalars.json'):
        plot_curves.main([str(tmp_path / 'curves')])


def test_plot_curves_joins_resumed_runs(tmp_path):
    def run(stamp, records):
        vis = tmp_path / 'work' / stamp / 'vis_data'
        vis.mkdir(parents=True)
        (vis / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in records))

    run('20260101_000000', [dict(step=i, epoch=1 + (i > 5), loss=1.0, lr=1e-4) for i in range(1, 11)] +
        [dict(step=1, **{'retrieval/mean_recall': 10.0})])
    run('20260102_000000', [dict(step=i, epoch=2 + (i > 10), loss=2.0, lr=1e-4) for i in range(8, 16)] +
        [dict(step=2, **{'retrieval/mean_recall': 20.0}), dict(step=3, **{'retrieval/mean_recall': 30.0})])
    files = plot_curves.find_scalars(str(tmp_path / 'work'))
    assert [Path(f).parts[-3] for f in files] == ['20260101_000000', '20260102_000000']
    series, by_epoch = plot_curves.read_scalars(files)
    assert by_epoch and series['retrieval/mean_recall'] == [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]
    assert [s for s, _ in series['loss']] == list(map(float, range(1, 16)))
    assert dict(series['loss'])[8.0] == 2.0 and dict(series['loss'])[7.0] == 1.0  # the resumed run wins
    written = plot_curves.main([str(tmp_path / 'work')])
    assert sorted(Path(p).name for p in written) == ['loss.png', 'metrics.png']
