"""Inferencers on a tiny model: results equal a direct computation from extract_image_feat / extract_text_feat."""
import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_mm.apis import (
    FeatureExtractor,
    ImageClassificationInferencer,
    ImageToTextRetrievalInferencer,
    TextToImageRetrievalInferencer,
)
from cnclip_mm.apis.inference import preprocess_images
from cnclip_mm.evaluation.templates import load_templates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_fixtures import TINY_NAME, tiny_release  # noqa: E402

CLASSES = ['鸟', '狗', '猫', '蛇']


def _images(folder: Path, n: int = 5, seed: int = 0) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f'img{i}.png'
        Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@torch.no_grad()
def _image_feats(model, images):
    return model.extract_image_feat(preprocess_images(model, images))


@torch.no_grad()
def _class_embeddings(model, prototypes, templates):
    per = model.extract_text_feat([t.format(p) for t in templates for p in prototypes])
    emb = per.view(len(templates), len(prototypes), -1).mean(0)
    return emb / emb.norm(dim=-1, keepdim=True)


def test_mmpretrain_style_call_by_name(zoo, tmp_path):
    """mmpretrain: ImageClassificationInferencer(NAME, pretrained=True, classes=..., text_prototype=...)(img)."""
    bird = _images(tmp_path / 'imgs', 1)[0]
    bird_jpeg = tmp_path / 'bird.JPEG'
    Image.open(bird).convert('RGB').save(bird_jpeg, format='JPEG')
    result = ImageClassificationInferencer(TINY_NAME, pretrained=True, classes=CLASSES,
                                           text_prototype=CLASSES)(str(bird_jpeg))[0]
    model = zoo['model']
    scale = float(model.logit_scale.detach().exp())
    assert scale < 99  # the tiny release's own scale, not the released models' 100
    probs = (scale * _image_feats(model, [str(bird_jpeg)]) @ _class_embeddings(model, CLASSES, load_templates(None)).T
             ).softmax(-1)[0]
    assert result['pred_class'] == CLASSES[int(probs.argmax())]
    assert result['pred_label'] == int(probs.argmax())
    assert result['pred_score'] == pytest.approx(float(probs.max()), abs=1e-5)
    assert result['topk_classes'][:1] == [result['pred_class']] and len(result['topk_scores']) == 4
    assert len(zoo['server'].requests) == 1


def test_zero_shot_inputs_templates_and_show_dir(tmp_path, vocab_file):
    model = tiny_release(tmp_path, vocab_file)[0]
    paths = _images(tmp_path / 'imgs')
    arrays = [np.asarray(Image.open(p).convert('RGB')) for p in paths]
    templates = ['一张{}的照片', '{}']
    inf = ImageClassificationInferencer(model, classes=['bird', 'dog', 'cat', 'snake'], text_prototype=CLASSES,
                                        templates=templates, topk=2, batch_size=2)
    by_folder = inf(str(tmp_path / 'imgs'), show_dir=str(tmp_path / 'show'))
    by_glob = inf(str(tmp_path / 'imgs' / '*.png'))
    by_pil = inf([Image.open(p) for p in paths])
    by_array = inf(arrays)
    probs = (model.logit_scale.detach().exp() * _image_feats(model, paths) @ _class_embeddings(model, CLASSES, templates).T
             ).softmax(-1)
    for results in (by_folder, by_glob, by_pil, by_array):
        assert [r['pred_label'] for r in results] == probs.argmax(-1).tolist()
        np.testing.assert_allclose(np.stack([r['pred_scores'] for r in results]), probs.numpy(), atol=1e-5)
        assert all(len(r['topk_labels']) == 2 for r in results)
    assert by_folder[0]['pred_class'] in ('bird', 'dog', 'cat', 'snake')
    inf(paths[:2], show_dir=str(tmp_path / 'show'))  # a second call adds pictures, never overwrites
    written = sorted(p.name for p in (tmp_path / 'show').glob('*.png'))
    assert written == [f'{i:04d}_img{i}.png' for i in range(5)] + ['0005_img0.png', '0006_img1.png']
    for i, res in enumerate(by_folder):  # no ground truth is known: the prediction is titled as one
        text = Image.open(tmp_path / 'show' / f'{i:04d}_img{i}.png').text['Description'].split('\n')
        assert text[0] == f"prediction: {res['pred_class']} ({res['pred_score']:.1%})"
        assert text[1:] == [f'{c} {p:.1%}' for c, p in zip(res['topk_classes'], res['topk_scores'])]
        assert not any('gt' in line for line in text)


def test_text_to_image_gallery_cache(tmp_path, vocab_file):
    model = tiny_release(tmp_path, vocab_file)[0]
    folder = tmp_path / 'gallery'
    paths = _images(folder)
    cache = str(tmp_path / 'gallery_feats.npz')
    queries = ['一只猫', '红色的汽车', '海边']
    first = TextToImageRetrievalInferencer(model, gallery=str(folder), topk=3, cache_file=cache)
    assert not first.gallery_from_cache
    results = first(queries, show_dir=str(tmp_path / 'show'))
    with torch.no_grad():
        sim = model.extract_text_feat(queries) @ _image_feats(model, paths).T
    scores, idx = sim.topk(3, dim=1)
    for res, row_s, row_i in zip(results, scores, idx):
        assert [m['index'] for m in res['matches']] == row_i.tolist()
        assert [m['id'] for m in res['matches']] == [f'img{i}.png' for i in row_i.tolist()]
        assert [m['score'] for m in res['matches']] == pytest.approx(row_s.tolist(), abs=1e-5)
    first(queries[:1], show_dir=str(tmp_path / 'show'))
    assert sorted(p.name for p in (tmp_path / 'show').glob('*.png')) == [f'{i:04d}_query.png' for i in range(4)]
    for i, res in enumerate(results):  # ranks, ids and scores; no hit / miss without ground truth
        text = Image.open(tmp_path / 'show' / f'{i:04d}_query.png').text['Description'].split('\n')
        assert text == [queries[i]] + [f"#{r + 1} {m['id']} score {m['score']:.3f}"
                                       for r, m in enumerate(res['matches'])]

    second = TextToImageRetrievalInferencer(model, gallery=str(folder), topk=3, cache_file=cache)
    assert second.gallery_from_cache and torch.equal(second.gallery_feats, first.gallery_feats)
    assert second(queries) == results
    _images(folder / 'more', n=1, seed=5)  # the gallery changes: features recomputed
    third = TextToImageRetrievalInferencer(model, gallery=str(folder), topk=3, cache_file=cache)
    assert not third.gallery_from_cache and len(third.gallery_feats) == 6

    tsv = tmp_path / 'valid_imgs.tsv'  # the official TSV layout, ids from the file
    lines = []
    for i, path in enumerate(paths):
        buf = io.BytesIO()
        Image.open(path).save(buf, format='PNG')
        lines.append(f'{100 + i}\t{base64.b64encode(buf.getvalue()).decode()}\n')
    tsv.write_text(''.join(lines))
    by_tsv = TextToImageRetrievalInferencer(model, gallery=str(tsv), topk=3, cache_file=str(tmp_path / 't.npz'))
    assert [[m['id'] for m in r['matches']] for r in by_tsv(queries)] == \
        [[str(100 + i) for i in row] for row in idx.tolist()]


def test_image_to_text_and_features(tmp_path, vocab_file):
    model = tiny_release(tmp_path, vocab_file)[0]
    paths = _images(tmp_path / 'imgs', n=3)
    texts = ['一只猫', '红色的汽车', '海边的日落', '一碗面条']
    results = ImageToTextRetrievalInferencer(model, texts=texts, topk=2)(paths)
    with torch.no_grad():
        sim = _image_feats(model, paths) @ model.extract_text_feat(texts).T
    assert [[m['index'] for m in r['matches']] for r in results] == sim.topk(2, dim=1).indices.tolist()
    assert results[0]['matches'][0]['text'] == texts[results[0]['matches'][0]['index']]

    extractor = FeatureExtractor(model)
    image_feats = torch.stack([r['image_feat'] for r in extractor(np.stack(
        [np.asarray(Image.open(p).convert('RGB').resize((48, 48))) for p in paths]))])
    expected = _image_feats(model, [Image.open(p).convert('RGB').resize((48, 48)) for p in paths])
    torch.testing.assert_close(image_feats, expected, atol=1e-6, rtol=0)
    text_feats = torch.stack([r['text_feat'] for r in extractor(texts, modality='text')])
    with torch.no_grad():
        torch.testing.assert_close(text_feats, model.extract_text_feat(texts), atol=1e-6, rtol=0)
    with pytest.raises(FileNotFoundError, match='no file matches'):
        extractor(str(tmp_path / 'nothing' / '*.jpg'))
