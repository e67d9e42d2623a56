"""Every endpoint's results equal the inferencers' on the same tiny model."""
import base64
import copy

import numpy as np
import pytest
import torch
from serving_fixtures import decode_b64_image, image_b64

from cnclip_mm.apis import FeatureExtractor, ZeroShotClassificationInferencer
from cnclip_mm.serving import Encoder

TEXTS = ['海边的日落', '一只猫在沙发上睡觉', '城市夜景']
CLASSES = ['猫', '狗', '汽车', '风景']


def test_health(client):
    health = client.get('/health').json()
    assert health['status'] == 'ok' and health['model'] == 'tiny' and health['embed_dim'] == 64
    assert health['backend'] == 'pytorch' and health['api_key_required'] is True
    assert health['limits']['max_batch_size'] == 8


def test_text_embeddings_match_the_feature_extractor(client, tiny_model):
    response = client.post('/v1/embeddings', json={'input': TEXTS, 'model': 'tiny'})
    assert response.status_code == 200
    body = response.json()
    assert body['object'] == 'list' and body['model'] == 'tiny'
    assert [d['index'] for d in body['data']] == [0, 1, 2] and {d['object'] for d in body['data']} == {'embedding'}
    expected = torch.stack([r['text_feat'] for r in FeatureExtractor(tiny_model)(TEXTS, modality='text')])
    got = torch.tensor([d['embedding'] for d in body['data']])
    assert torch.allclose(got, expected, atol=1e-5)
    tokens = int((tiny_model.tokenize(TEXTS) != 0).sum())
    assert body['usage'] == {'prompt_tokens': tokens, 'total_tokens': tokens}
    # a single string and OpenAI's base64 encoding (little-endian float32)
    single = client.post('/v1/embeddings', json={'input': TEXTS[0], 'encoding_format': 'base64'}).json()
    row = np.frombuffer(base64.b64decode(single['data'][0]['embedding']), dtype='<f4')
    assert np.allclose(row, expected[0].numpy(), atol=1e-5)


def test_image_embeddings_match_the_feature_extractor(client, tiny_model):
    images = [image_b64(48, 40, seed=1), image_b64(64, 64, seed=2, fmt='JPEG'),
              'data:image/png;base64,' + image_b64(30, 70, seed=3)]
    body = client.post('/v1/embeddings', json={'images': images}).json()
    expected = torch.stack([r['image_feat'] for r in
                            FeatureExtractor(tiny_model)([decode_b64_image(b.split(',')[-1]) for b in images])])
    got = torch.tensor([d['embedding'] for d in body['data']])
    assert torch.allclose(got, expected, atol=1e-5)
    assert body['usage']['total_tokens'] == 0


def test_encoder_sends_a_batch_to_the_device_in_one_copy(device, tiny_model):
    """Request threads resize on the host (uint8, CPU); the worker normalises the stacked batch on the
    model's device. Together they are the inferencers' preprocessing, on every device."""
    model = copy.deepcopy(tiny_model).to(device)
    images = [decode_b64_image(image_b64(48, 40, seed=1)), decode_b64_image(image_b64(64, 64, seed=2, fmt='JPEG'))]
    encoder, size = Encoder(model), model.image_encoder.img_size
    inputs = [encoder.preprocess(image) for image in images]
    assert all(x.dtype == torch.uint8 and x.device.type == 'cpu' and x.shape == (3, size, size) for x in inputs)
    expected = torch.stack([r['image_feat'] for r in FeatureExtractor(model)(images)])
    assert torch.allclose(encoder.compute('image', inputs).float().cpu(), expected.cpu(), atol=1e-5)


def test_classify_matches_the_zero_shot_inferencer(client, tiny_model):
    images = [image_b64(48, 40, seed=4), image_b64(50, 50, seed=5, fmt='JPEG')]
    body = client.post('/classify', json={'images': images, 'classes': CLASSES, 'top_k': 2}).json()
    reference = ZeroShotClassificationInferencer(tiny_model, classes=CLASSES, topk=2)(
        [decode_b64_image(b) for b in images])
    assert body['classes'] == CLASSES and len(body['data']) == 2
    for got, ref in zip(body['data'], reference):
        assert got['class'] == ref['pred_class'] and got['label'] == ref['pred_label']
        assert got['score'] == pytest.approx(ref['pred_score'], abs=1e-5)
        assert np.allclose(got['scores'], ref['pred_scores'], atol=1e-5)
        assert [t['class'] for t in got['top_k']] == ref['topk_classes']
        assert np.allclose([t['score'] for t in got['top_k']], ref['topk_scores'], atol=1e-5)
