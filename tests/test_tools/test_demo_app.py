"""tools/demo/app.py on 127.0.0.1 with a tiny model and a 5-image gallery, queried through gradio_client."""
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
sys.path.insert(0, str(REPO / 'tests' / 'test_apis'))
from eval_fixtures import load_tool  # noqa: E402
from zoo_fixtures import TINY_NAME, zoo  # noqa: E402,F401

from cnclip_mm.apis import TextToImageRetrievalInferencer, ZeroShotClassificationInferencer  # noqa: E402
from cnclip_mm.apis.web_demo import parse_classes, percent  # noqa: E402


def test_demo_endpoints_equal_inferencers(tmp_path, zoo, monkeypatch):  # noqa: F811
    from gradio_client import Client, handle_file
    monkeypatch.setenv('GRADIO_ANALYTICS_ENABLED', 'False')
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(gallery / f'photo{i}.png')
    query_image = tmp_path / 'query.png'
    Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).save(query_image)

    templates = tmp_path / 'templates.txt'
    templates.write_text('一张{}的照片。\n{}\n', encoding='utf-8')
    from mmengine.logging import MMLogger
    run_log = MMLogger.get_instance('demo_app_test_run', log_file=str(tmp_path / 'run.log'))
    demo, url = load_tool('demo/app.py').main([TINY_NAME, '--gallery', str(gallery), '--templates', str(templates)],
                                              block=False)
    try:
        assert url.startswith('http://127.0.0.1:')
        client = Client(url, verbose=False)
        label, table, note = client.predict(handle_file(str(query_image)), '猫，狗, 汽车、海', 3, api_name='/classify')
        thumbs, hits, query_note = client.predict('海边的日落', 4, api_name='/search')
    finally:
        demo.close()
    run_log.info('still logging after the server started')  # a Runner's log file survives the launch
    assert 'still logging' in (tmp_path / 'run.log').read_text()

    model = zoo['model']
    expected = ZeroShotClassificationInferencer(model, classes=['猫', '狗', '汽车', '海'], templates=str(templates),
                                                topk=3)(Image.open(query_image))[0]
    assert label['label'] == expected['pred_class']
    assert [row[:2] for row in table['data']] == [[1, expected['topk_classes'][0]], [2, expected['topk_classes'][1]],
                                                  [3, expected['topk_classes'][2]]]
    assert [row[2] for row in table['data']] == [percent(p) for p in expected['topk_scores']]
    scale = float(model.logit_scale.detach().exp())
    assert f'{scale:.2f} × cosine' in note and scale < 99  # the model's own scale, not a fixed 100

    search = TextToImageRetrievalInferencer(model, gallery=str(gallery), topk=4,
                                            cache_file=str(tmp_path / 'g.npz'))('海边的日落')[0]['matches']
    assert [row[:2] for row in hits['data']] == [[i + 1, m['id']] for i, m in enumerate(search)]
    assert [float(row[2]) for row in hits['data']] == pytest.approx([m['score'] for m in search], abs=1e-4)
    assert len(thumbs) == 4 and all(Path(t['image']).is_file() for t in thumbs)
    assert thumbs[0]['caption'].startswith(f"#1 {search[0]['id']}")
    assert 'fits the context length' in query_note


def test_percent():
    assert [percent(p) for p in (1.0, 0.1234, 0.0004, 0.0)] == ['100.0%', '12.3%', '<0.1%', '0.0%']


def test_parse_classes():
    assert parse_classes('猫，狗, 汽车、海\n鸟;') == ['猫', '狗', '汽车', '海', '鸟']
    with pytest.raises(ValueError, match='at least one class'):
        parse_classes(' , ')


def test_launch_reopens_log_files_and_drops_those_whose_folder_is_gone(tmp_path):
    """A server that closes every handler (as gradio's uvicorn does) must leave the process's loggers
    writable: live files are reopened; a file whose folder was deleted (a finished run's temporary work
    dir) is detached, never left as a handler with no stream."""
    import logging
    import shutil

    from mmengine.logging import MMLogger

    from cnclip_mm.apis.web_demo import launch
    (tmp_path / 'live').mkdir()
    (tmp_path / 'gone').mkdir()
    live = MMLogger.get_instance('launch_test_live', log_file=str(tmp_path / 'live' / 'run.log'))
    gone = MMLogger.get_instance('launch_test_gone', log_file=str(tmp_path / 'gone' / 'run.log'))
    shutil.rmtree(tmp_path / 'gone')

    class ClosingServer:
        def launch(self, **kwargs):
            for ref in list(logging._handlerList):
                if isinstance(ref(), logging.FileHandler):
                    ref().close()
            return 'started'

    assert launch(ClosingServer()) == 'started'
    live.warning('still written')
    assert 'still written' in (tmp_path / 'live' / 'run.log').read_text()
    assert not any(isinstance(h, logging.FileHandler) for h in gone.handlers)
    gone.warning('no crash')  # the console handler remains
