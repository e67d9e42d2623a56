"""Every limit and bad input gets a 4xx whose message names the problem; a broken image fails only itself."""
import base64
import resource

import httpx
import pytest
import torch
from serving_fixtures import API_KEY, image_b64, png_header

TEXT = '一只猫'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def truncated_jpeg() -> str:
    data = base64.b64decode(image_b64(64, 64, seed=7, fmt='JPEG'))
    return b64(data[:len(data) // 2])


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()['error']['message']


@pytest.mark.parametrize('images, status, words', [
    ([b64(b'hello, not an image')], 400, ['images', 'not an image']),
    ([truncated_jpeg()], 400, ['images', 'truncated or corrupt']),
    ([b64(png_header(30000, 30000))], 413, ['max_image_pixels=262144', 'refused from its header']),
    ([b64(png_header(600, 600))], 413, ['600x600', 'max_image_pixels=262144', 'refused from its header']),
    ([image_b64(500, 500)], 413, ['max_image_bytes=300000']),
    (['not base64!'], 400, ['images', 'not valid base64']),
    ([''], 400, ['images', 'empty']),
    ([b64(b'x'), 'not base64!'], 400, ['images[0]', 'not an image', 'images[1]', 'not valid base64']),
])
def test_bad_images(client, images, status, words):
    message = error_of(client.post('/v1/embeddings', json={'images': images}), status)
    assert all(word in message for word in words), message


def test_huge_png_header_is_refused_without_allocating(client):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for endpoint, body in (('/v1/embeddings', {'images': [b64(png_header(30000, 30000))]}),
                           ('/classify', {'images': b64(png_header(30000, 30000)), 'classes': ['猫']})):
        assert 'max_image_pixels' in error_of(client.post(endpoint, json=body), 413)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200  # the pixels would take 2.7 GB


@pytest.mark.parametrize('body, status, words', [
    ({'input': ''}, 422, ['input', 'empty text']),
    ({'input': [TEXT, '   ']}, 422, ['input[1]', 'empty text']),
    ({'input': 'x' * (10 << 20)}, 413, ['10485760 characters', 'max_text_chars=200']),
    ({'input': [TEXT] * 9}, 413, ['9 items', 'max_batch_size=8']),
    ({'images': [image_b64()] * 9}, 413, ['9 items', 'max_batch_size=8']),
    ({'input': []}, 422, ['input is empty']),
    ({}, 422, ["exactly one of 'input'"]),
    ({'input': TEXT, 'images': [image_b64()]}, 422, ["exactly one of 'input'"]),
    ({'inputs': TEXT}, 422, ['inputs: unknown field']),
    ({'input': [1, 2]}, 422, ['input']),
    ({'input': TEXT, 'encoding_format': 'int8'}, 422, ['encoding_format']),
])
def test_bad_embedding_requests(client, body, status, words):
    message = error_of(client.post('/v1/embeddings', json=body), status)
    assert all(word in message for word in words), message


@pytest.mark.parametrize('body, status, words', [
    ({'images': image_b64()}, 422, ['classes: required field missing']),
    ({'classes': ['猫']}, 422, ['images: required field missing']),
    ({'images': image_b64(), 'classes': []}, 422, ['classes is empty']),
    ({'images': image_b64(), 'classes': ['猫', '猫']}, 422, ['classes holds a name twice']),
    ({'images': image_b64(), 'classes': [f'类{i}' for i in range(21)]}, 413, ['21 names', 'max_classes=20']),
    ({'images': image_b64(), 'classes': ['猫', '']}, 422, ['classes[1]', 'empty text']),
    ({'images': image_b64(), 'classes': ['猫'], 'top_k': 0}, 422, ['top_k=0', 'max_top_k=10']),
    ({'images': image_b64(), 'classes': ['猫'], 'top_k': 'many'}, 422, ['top_k']),
])
def test_bad_classify_requests(client, body, status, words):
    message = error_of(client.post('/classify', json=body), status)
    assert all(word in message for word in words), message


@pytest.mark.parametrize('content, headers, status, words', [
    (b'{"input": "\xe4\xb8\x80", ', {'content-type': 'application/json'}, 400, ['not valid JSON']),
    (b'[1, 2]', {'content-type': 'application/json'}, 422, ['must be a JSON object']),
    (b'', {'content-type': 'application/json'}, 422, ['request body is missing']),
    (b'{"input": "x"}', {'content-type': 'text/plain'}, 422, ['Content-Type: application/json']),
    (b'{"input": "\\ud800"}', {'content-type': 'application/json'}, 422, ['input', 'not valid Unicode']),
    (b'{"input": "\xff\xfe"}', {'content-type': 'application/json'}, 400, ['error parsing the body']),
    (b'[' * 100000, {'content-type': 'application/json'}, 400, ['error parsing the body']),
])
def test_malformed_bodies(client, content, headers, status, words):
    message = error_of(client.post('/v1/embeddings', content=content, headers=headers), status)
    assert all(word in message for word in words), message


def test_request_body_limit_declared_and_chunked(client):
    big = b'{"input": "' + b'x' * (17 << 20) + b'"}'
    assert 'max_request_bytes=16777216' in error_of(
        client.post('/v1/embeddings', content=big, headers={'content-type': 'application/json'}), 413)

    def chunks():  # no Content-Length: counted while read
        for start in range(0, len(big), 1 << 20):
            yield big[start:start + (1 << 20)]
    assert 'max_request_bytes=16777216' in error_of(
        client.post('/v1/embeddings', content=chunks(), headers={'content-type': 'application/json'}), 413)


def test_api_key(server):
    body = {'input': TEXT}
    with httpx.Client(base_url=server.url) as anonymous:
        assert 'needs an API key' in error_of(anonymous.post('/v1/embeddings', json=body), 401)
        wrong = anonymous.post('/v1/embeddings', json=body, headers={'Authorization': 'Bearer wrong'})
        assert 'wrong API key' in error_of(wrong, 401) and wrong.headers['www-authenticate'] == 'Bearer'
        assert 'needs an API key' in error_of(anonymous.post('/classify', json=body,
                                                             headers={'Authorization': API_KEY}), 401)
        assert anonymous.get('/health').status_code == 200  # health stays open for probes
        ok = anonymous.post('/v1/embeddings', json=body, headers={'Authorization': f'Bearer {API_KEY}'})
        assert ok.status_code == 200


def test_unknown_routes_and_methods(client):
    assert 'Not Found' in error_of(client.get('/v2/embeddings'), 404)
    assert 'Method Not Allowed' in error_of(client.get('/v1/embeddings'), 405)


def test_a_broken_image_fails_only_its_own_item(client):
    good = [image_b64(40, 40, seed=11), image_b64(50, 30, seed=12)]
    batch = [good[0], truncated_jpeg(), good[1], b64(png_header(30000, 30000))]
    body = client.post('/v1/embeddings', json={'images': batch}).json()
    assert [d['object'] for d in body['data']] == ['embedding', 'error', 'embedding', 'error']
    assert [d['index'] for d in body['data']] == [0, 1, 2, 3]
    assert body['data'][1]['error']['param'] == 'images[1]' and body['data'][1]['error']['code'] == 400
    assert 'truncated or corrupt' in body['data'][1]['error']['message']
    assert body['data'][3]['error']['code'] == 413 and 'max_image_pixels' in body['data'][3]['error']['message']
    alone = client.post('/v1/embeddings', json={'images': good}).json()
    for got, ref in zip([body['data'][0], body['data'][2]], alone['data']):
        assert torch.allclose(torch.tensor(got['embedding']), torch.tensor(ref['embedding']), atol=1e-5)
    classified = client.post('/classify', json={'images': [good[0], b64(b'junk')], 'classes': ['猫', '狗']}).json()
    assert [d['object'] for d in classified['data']] == ['classification', 'error']
    assert 'not an image' in classified['data'][1]['error']['message']
