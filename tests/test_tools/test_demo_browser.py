"""The web demo in a real browser: Debian's chromium driven by Playwright against the app on 127.0.0.1.

Each step saves a screenshot under the test's tmp folder and is checked by the page's text (what a user
reads), never by pixels: messages for a non-image upload, empty classes and an empty query; probabilities
as percentages with the model's own logit scale; ranked search results; the notice of a truncated query.
The browser comes from tools/dev/install_test_browser.sh (the README's test command runs it).
"""
import re

import numpy as np
import pytest
from PIL import Image

from cnclip_mm.apis import init_model
from cnclip_mm.apis.web_demo import build_demo, launch

CHROMIUM = '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run']
TIMEOUT_MS = 30_000


@pytest.fixture(scope='module')
def served(tmp_path_factory, vocab_file):
    import copy
    import os

    from tests.conftest import TINY_MODEL
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    root = tmp_path_factory.mktemp('browser')
    rng = np.random.default_rng(0)
    (root / 'gallery').mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / 'gallery' / f'photo{i}.png')
    model = init_model(copy.deepcopy(TINY_MODEL))
    demo = build_demo(model, gallery=str(root / 'gallery'), topk=3, cache_file=str(root / 'g.npz'))
    _, url, _ = launch(demo, server_name='127.0.0.1', prevent_thread_lock=True, quiet=True)
    yield url, root, model
    demo.close()


def _wait_text(page, text: str, shots, name: str) -> str:
    page.get_by_text(text, exact=False).first.wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(shots / f'{name}.png'), full_page=True)
    body = page.inner_text('body')
    assert text in body
    return body


def test_web_demo_in_chromium(served):
    from playwright.sync_api import sync_playwright
    url, root, model = served
    shots = root / 'screenshots'
    shots.mkdir()
    (root / 'notes.png').write_text('not a picture')  # an image's name, a text's bytes
    Image.fromarray(np.full((50, 50, 3), 200, dtype=np.uint8)).save(root / 'grey.png')
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.route('**/*', lambda route: route.continue_() if route.request.url.startswith(url)
                       else route.abort())  # no fonts or analytics from outside
            page.goto(url)
            page.get_by_role('button', name='classify').wait_for(timeout=TIMEOUT_MS)
            upload = page.locator('input[type="file"]').first

            upload.set_input_files(str(root / 'notes.png'))
            page.get_by_role('button', name='classify').click()
            _wait_text(page, '"notes.png" is not an image this demo can read', shots, '1_not_an_image')

            upload.set_input_files(str(root / 'grey.png'))
            page.get_by_label('classes (comma separated)').fill(' ， ')
            page.get_by_role('button', name='classify').click()
            _wait_text(page, 'type at least one class name', shots, '2_no_classes')

            page.get_by_label('classes (comma separated)').fill('猫, 狗, 汽车')
            page.get_by_role('button', name='classify').click()
            scale = float(model.logit_scale.detach().exp())
            body = _wait_text(page, f'softmax over the 3 classes of {scale:.2f} × cosine', shots, '3_classified')
            rows = re.findall(r'(?m)^(\d)\n(猫|狗|汽车)\n(\d{1,3}\.\d%|<0\.1%)$', body)
            assert [rank for rank, _, _ in rows] == ['1', '2', '3'], body  # ranked, probabilities in percent

            page.get_by_role('tab', name='Text-to-image search').click()
            query = page.get_by_label('query (Chinese)')
            query.fill('   ')
            page.get_by_role('button', name='search', exact=True).click()
            _wait_text(page, 'type a Chinese query', shots, '4_empty_query')

            query.fill('一只在草地上奔跑的狗' * 30)
            page.get_by_role('button', name='search', exact=True).click()
            body = _wait_text(page, 'so it was truncated to: 一只在草地上奔跑的狗', shots, '5_truncated')
            context = model.tokenizer.context_length
            assert f'the model reads {context - 2} (context length {context})' in body
            assert 'cosine similarity' in body and re.search(r'#1 photo\d\.png', body), body
        finally:
            browser.close()
    assert len(list(shots.glob('*.png'))) == 5
