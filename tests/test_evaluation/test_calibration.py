"""Calibrated scores: Platt scaling beats the raw cosine on calibration error, the JSON file round-trips and
is checked, inferencers return probabilities and apply a threshold, the tool fits from labelled pairs."""
import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_mm.apis import (
    ImageToTextRetrievalInferencer,
    TextToImageRetrievalInferencer,
    ZeroShotClassificationInferencer,
)
from cnclip_mm.evaluation.calibration import (
    Calibration,
    expected_calibration_error,
    fit_platt,
    model_identity,
    precision_thresholds,
)
from cnclip_mm.registry import MODELS
from tests.test_evaluation.eval_fixtures import load_tool


def synthetic_pairs(n: int, seed: int):
    """Cosines as CLIP gives them: matches around 0.45, non-matches around 0.25, one match in five."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.2).astype(np.float64)
    return np.where(labels == 1, rng.normal(0.45, 0.06, n), rng.normal(0.25, 0.06, n)), labels


def test_fitted_mapping_is_better_calibrated_than_the_raw_cosine():
    scores, labels = synthetic_pairs(3000, seed=0)
    held_scores, held_labels = synthetic_pairs(3000, seed=1)
    calibration = Calibration(**fit_platt(scores, labels))
    raw = expected_calibration_error(held_scores, held_labels)
    fitted = expected_calibration_error(calibration(held_scores), held_labels)
    print(f'expected calibration error on 3000 held-out synthetic pairs: raw cosine {raw:.4f}, '
          f'calibrated {fitted:.4f}')
    assert fitted < 0.03 < 0.2 < raw
    # Newton's fit is the logistic-loss minimum: no nearby (a, b) does better on the smoothed targets.
    a, b = calibration.a, calibration.b
    y = np.where(labels == 1, (labels.sum() + 1) / (labels.sum() + 2), 1 / ((1 - labels).sum() + 2))

    def loss(a, b):
        z = a * scores + b
        return np.sum(np.logaddexp(0, z) - y * z)

    assert all(loss(a, b) <= loss(a + da, b + db) for da, db in [(0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)])
    rows = precision_thresholds(calibration(held_scores), held_labels, targets=(0.9, ))
    kept = calibration(held_scores) >= rows[0]['threshold']
    assert held_labels[kept].mean() >= 0.9


@pytest.fixture(scope='module')
def tiny_model():
    from tests.conftest import TINY_MODEL
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(TINY_MODEL)).eval()


def test_round_trip_and_clear_errors(tmp_path, tiny_model):
    calibration = Calibration(12.5, -4.25, model_identity(tiny_model), dict(note='x'))
    path = calibration.save(str(tmp_path / 'c.json'))
    loaded = Calibration.load(path, tiny_model)
    scores = torch.linspace(-1, 1, 11)
    assert (loaded.a, loaded.b) == (12.5, -4.25) and torch.equal(loaded(scores), calibration(scores))
    assert loaded(0.3) == pytest.approx(1 / (1 + np.exp(-(12.5 * 0.3 - 4.25))))
    data = json.loads(open(path, encoding='utf-8').read())
    cases = [(dict(data, params={'b': 1.0}), 'key "params.a" must be a number, got None'),
             (dict(data, params={'a': 'x', 'b': 1.0}), 'key "params.a" must be a number'),
             (dict(data, format='pickle'), 'key "format" must be'),
             (dict(data, model={}), 'key "model.fingerprint" must be a string')]
    for bad, message in cases:
        (tmp_path / 'bad.json').write_text(json.dumps(bad), encoding='utf-8')
        with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
            Calibration.load(str(tmp_path / 'bad.json'))
    other = copy.deepcopy(tiny_model)
    other.tokenizer.context_length = 128
    with pytest.raises(ValueError, match='key "model.context_length" is 52 but the model here has 128'):
        Calibration.load(path, other)
    with torch.no_grad():
        other.logit_scale.add_(1)
    with pytest.raises(ValueError, match='key "model.fingerprint"'):
        Calibration.load(path, other)


def test_inferencers_return_probabilities_and_apply_the_threshold(tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        images.append(str(tmp_path / f'{i}.png'))
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images[-1])
    texts = ['一只猫', '红色的圆', '蓝色的方块', '海边']
    calibration = Calibration(40.0, -2.0, model_identity(tiny_model))
    path = calibration.save(str(tmp_path / 'calibration.json'))

    plain_inferencer = ImageToTextRetrievalInferencer(tiny_model, texts=texts, topk=4, cpu_speed=False)
    plain = plain_inferencer(images)
    calibrated = ImageToTextRetrievalInferencer(tiny_model, texts=texts, topk=4, calibration=path,
                                                cpu_speed=False)(images)
    for raw, res in zip(plain, calibrated):
        for a, b in zip(raw['matches'], res['matches']):
            assert a['score'] == b['score'] and 0 <= b['prob'] <= 1
            assert b['prob'] == pytest.approx(1 / (1 + np.exp(-(40 * b['score'] - 2))), abs=1e-6)
    probs = sorted(m['prob'] for res in calibrated for m in res['matches'])
    threshold = probs[len(probs) // 2]  # half the matches fall below it
    plain_inferencer.calibration, plain_inferencer.threshold = calibration, threshold
    kept = plain_inferencer(images)
    assert sum(len(res['matches']) for res in kept) == sum(p >= threshold for p in probs)
    assert sum(res['num_dropped'] for res in kept) == sum(p < threshold for p in probs) > 0
    assert all(m['prob'] >= threshold for res in kept for m in res['matches'])

    search = TextToImageRetrievalInferencer(tiny_model, gallery=images, topk=2, calibration=path, threshold=1.0,
                                            cache_file=str(tmp_path / 'gallery.npz'), cpu_speed=False)
    results = search(texts)
    assert all(res['matches'] == [] and res['num_dropped'] == 2 for res in results)  # nothing reaches p = 1

    zero_shot = ZeroShotClassificationInferencer(tiny_model, classes=texts, templates=['{}'], topk=3,
                                                 calibration=calibration, cpu_speed=False)
    res = zero_shot(images[:1])[0]
    assert res['pred_prob'] == pytest.approx(float(calibration(torch.tensor(res['topk_cosines'][0]))), abs=1e-6)
    assert all(0 <= p <= 1 for p in res['topk_probs'])
    zero_shot.threshold = 1.0  # an image that matches no class well: no class
    none = zero_shot(images[:1])[0]
    assert none['pred_class'] is None and none['pred_label'] == -1 and none['num_dropped'] == 3
    with pytest.raises(ValueError, match='model.context_length'):
        other = copy.deepcopy(tiny_model)
        other.tokenizer.context_length = 64
        ImageToTextRetrievalInferencer(other, texts=texts, calibration=path)


def test_calibrate_tool_fits_labelled_pairs(tmp_path, vocab_file):
    from tests.test_converters.ckpt_builders import official_vit_state_dict, save_official
    torch.manual_seed(0)
    (tmp_path / 'ckpt').mkdir()
    checkpoint = save_official(official_vit_state_dict(), tmp_path / 'ckpt' / 'epoch_latest.pt')
    rng = np.random.default_rng(0)
    colours = {'红色': (220, 30, 30), '绿色': (30, 200, 30), '蓝色': (30, 30, 220)}
    rows = []
    for i, (name, rgb) in enumerate(colours.items()):
        image = tmp_path / 'pairs' / f'{i}.png'
        image.parent.mkdir(exist_ok=True)
        noise = rng.integers(-20, 20, (32, 32, 3))
        Image.fromarray(np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)).save(image)
        for other in colours:
            rows.append(dict(image=f'{i}.png', text=f'一张{other}的图片', label=int(other == name)))
    pairs = tmp_path / 'pairs' / 'pairs.jsonl'
    pairs.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows * 4), encoding='utf-8')
    out = load_tool('analysis/calibrate.py').main([str(checkpoint), '--pairs', str(pairs), '--holdout', '0'])
    assert out == str(tmp_path / 'ckpt' / 'epoch_latest.calibration.json')  # beside the checkpoint
    from cnclip_mm.models.builder import init_model
    calibration = Calibration.load(out, init_model(checkpoint=str(checkpoint)))  # the model it was fitted for
    assert calibration.info['pairs'] == 36 and calibration.info['matching'] == 12
    assert calibration.model['checkpoint'] == str(checkpoint)
    png = tmp_path / 'ckpt' / 'epoch_latest.calibration.reliability.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    pairs.write_text('{"image": "0.png", "text": "猫", "label": 2}\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r'pairs.jsonl line 1: key "label" must be 1 \(match\) or 0'):
        load_tool('analysis/calibrate.py').main([str(checkpoint), '--pairs', str(pairs)])


def test_retrieval_pairs_are_ground_truth_plus_sampled_other_images():
    retrieval_pairs = load_tool('analysis/calibrate.py').retrieval_pairs
    feats = torch.eye(4)
    out = dict(image_feats=list(feats), image_ids=[dict(image_id=i) for i in (10, 11, 12, 13)],
               text_feats=list(feats[:3]), text_ids=[dict(text_id=0, image_ids=[10]), dict(text_id=1, image_ids=[11, 12]),
                                                     dict(text_id=2, image_ids=[99])])  # 99: not among the images
    scores, labels = retrieval_pairs(out, negatives=2, seed=0)
    assert labels.tolist() == [1, 0, 0, 1, 1, 0, 0]
    assert scores.tolist() == [1, 0, 0, 1, 0, 0, 0]  # text t matches image t only: no negative is a positive
    with pytest.raises(ValueError, match='no text has a ground-truth image'):
        retrieval_pairs(dict(out, text_ids=[dict(text_id=0, image_ids=[99])] * 3), negatives=2, seed=0)
