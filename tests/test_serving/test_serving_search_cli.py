"""tools/serve.py with --index: /search equals brute force over the gallery features; a foreign index is
refused at start; --help needs no torch."""
import subprocess
import sys

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from serving_fixtures import REPO, TINY_CONFIG, decode_b64_image, image_b64

sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import load_tool  # noqa: E402

from cnclip_mm.apis import FeatureExtractor, init_model  # noqa: E402
from cnclip_mm.index import ModelMismatchError, build_index  # noqa: E402
from cnclip_mm.serving import ServerThread  # noqa: E402

serve = load_tool('serve.py')


@pytest.fixture(scope='module')
def gallery(tmp_path_factory, tiny_model):
    """12 images, the tiny model's checkpoint, and an index of the images built with it."""
    root = tmp_path_factory.mktemp('search')
    folder = root / 'photos'
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)).save(folder / f'p{i:02d}.png')
    checkpoint = str(root / 'tiny.pth')
    torch.save({'state_dict': tiny_model.state_dict()}, checkpoint)
    index = str(root / 'photos.index')
    build_index(tiny_model, str(folder), index, source=checkpoint, progress=False)
    return dict(root=root, folder=folder, checkpoint=checkpoint, index=index)


@pytest.fixture(scope='module')
def search_server(gallery):
    app = serve.build_app(serve.parse_args([gallery['checkpoint'], '--config', TINY_CONFIG, '--index',
                                            gallery['index'], '--max-wait-ms', '1', '--max-top-k', '5']))
    with ServerThread(app) as running:
        yield running


def _brute_force(tiny_model, folder, query: torch.Tensor, k: int):
    paths = sorted(folder.glob('*.png'))
    feats = torch.stack([r['image_feat'] for r in FeatureExtractor(tiny_model)([str(p) for p in paths])])
    scores, rows = (query @ feats.T).topk(k)
    return [paths[i].name for i in rows.tolist()], scores.tolist()


def test_text_and_image_search_equal_brute_force(search_server, gallery, tiny_model):
    with httpx.Client(base_url=search_server.url) as client:
        health = client.get('/health').json()
        assert health['index']['size'] == 12 and health['index']['kind'] == 'exact'
        body = client.post('/search', json={'text': '海边的日落', 'top_k': 5}).json()
        assert body['query'] == 'text' and len(body['results']) == 5
        query = FeatureExtractor(tiny_model)(['海边的日落'], modality='text')[0]['text_feat']
        ids, scores = _brute_force(tiny_model, gallery['folder'], query, 5)
        assert [r['id'] for r in body['results']] == ids
        assert np.allclose([r['score'] for r in body['results']], scores, atol=1e-5)

        picture = image_b64(45, 45, seed=9)
        body = client.post('/search', json={'image': picture, 'top_k': 3}).json()
        query = FeatureExtractor(tiny_model)([decode_b64_image(picture)])[0]['image_feat']
        ids, scores = _brute_force(tiny_model, gallery['folder'], query, 3)
        assert body['query'] == 'image' and [r['id'] for r in body['results']] == ids
        assert np.allclose([r['score'] for r in body['results']], scores, atol=1e-5)


@pytest.mark.parametrize('body, status, words', [
    ({'text': '', 'top_k': 3}, 422, ['text is an empty text']),
    ({'text': '猫', 'top_k': 6}, 422, ['top_k=6', 'max_top_k=5']),
    ({'text': '猫', 'image': image_b64()}, 422, ["exactly one of 'text' and 'image'"]),
    ({'image': 'bm90IGFuIGltYWdl'}, 400, ['image', 'not an image']),
    ({'top_k': 3}, 422, ["exactly one of 'text' and 'image'"]),
])
def test_bad_search_requests(search_server, body, status, words):
    response = httpx.post(search_server.url + '/search', json=body)
    assert response.status_code == status, response.text
    assert all(word in response.json()['error']['message'] for word in words), response.text


def test_search_without_an_index_names_the_flag(client):
    response = client.post('/search', json={'text': '猫'})
    assert response.status_code == 404 and '--index' in response.json()['error']['message']


def test_an_index_of_another_model_is_refused_at_start(gallery):
    torch.manual_seed(1)
    other = init_model(TINY_CONFIG)
    foreign = str(gallery['root'] / 'foreign.index')
    build_index(other, str(gallery['folder']), foreign, source='other', progress=False)
    with pytest.raises(ModelMismatchError, match='weights'):
        serve.build_app(serve.parse_args([gallery['checkpoint'], '--config', TINY_CONFIG, '--index', foreign]))


def test_help_parses_before_heavy_imports():
    out = subprocess.run([sys.executable, '-X', 'importtime', str(REPO / 'tools' / 'serve.py'), '--help'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and '--max-image-pixels' in out.stdout and '--api-key' in out.stdout
    imported = {line.rsplit('|', 1)[-1].strip() for line in out.stderr.splitlines()}
    assert not imported & {'torch', 'fastapi', 'cnclip_mm'}


def test_onnxruntime_backend_serves_the_same_embeddings(gallery, tiny_model, tmp_path):
    texts, picture = ['海边的日落', '一只猫在沙发上睡觉'], image_b64(45, 40, seed=3)
    app = serve.build_app(serve.parse_args([gallery['checkpoint'], '--config', TINY_CONFIG, '--backend',
                                            'onnxruntime', '--onnx-dir', str(tmp_path / 'onnx'), '--max-wait-ms', '1']))
    with ServerThread(app) as running, httpx.Client(base_url=running.url) as client:
        assert client.get('/health').json()['backend'] == 'onnxruntime'
        got_texts = [d['embedding'] for d in client.post('/v1/embeddings', json={'input': texts}).json()['data']]
        got_image = client.post('/v1/embeddings', json={'images': picture}).json()['data'][0]['embedding']
    extractor = FeatureExtractor(tiny_model)
    ref_texts = torch.stack([r['text_feat'] for r in extractor(texts, modality='text')])
    ref_image = extractor([decode_b64_image(picture)])[0]['image_feat']
    assert torch.allclose(torch.tensor(got_texts), ref_texts, atol=1e-4)  # the export's fp32 tolerance
    assert torch.allclose(torch.tensor(got_image), ref_image, atol=1e-4)
