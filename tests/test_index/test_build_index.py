"""tools/index/build_index.py and the inferencers / demo on its index, with a tiny model and a 24-image gallery."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnclip_mm.apis.inferencers import (
    ImageToImageRetrievalInferencer,
    TextToImageRetrievalInferencer,
)
from cnclip_mm.index import ModelMismatchError, open_index

REPO = Path(__file__).resolve().parents[2]
GALLERY_SIZE = 24  # conftest's gallery
QUERIES = ['海边的日落', '一只小狗', '红色的汽车']


def build_tool():
    sys.path.insert(0, str(REPO / 'tools' / 'index'))
    import build_index
    return build_index


@pytest.fixture(scope='module')
def folder_index(assets, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('folder') / 'gallery.index')
    build_tool().main([assets['ckpt'], assets['gallery'], '--out', out, '--batch-size', '8', '--no-progress'])
    return out


def assert_same_index(path, reference):
    got, ref = open_index(path), open_index(reference)
    assert sorted(got.ids) == sorted(ref.ids) and len(set(got.ids)) == len(got.ids)
    np.testing.assert_allclose(got.get_vectors(ref.ids), ref.get_vectors(ref.ids), atol=1e-5)


def test_index_search_equals_brute_force(assets, folder_index, tmp_path):
    index = open_index(folder_index)
    assert len(index) == GALLERY_SIZE and index.kind == 'exact'
    assert index.meta['model']['source'] == assets['ckpt'] and len(index.meta['model']['checkpoint_sha256']) == 64
    assert index.meta['model']['preprocessing']['image_size'] == 64
    model = assets['model']
    brute = TextToImageRetrievalInferencer(model, gallery=assets['gallery'], topk=5,
                                           cache_file=str(tmp_path / 'feats.npz'))(QUERIES)
    indexed = TextToImageRetrievalInferencer(model, index=folder_index, topk=5)(QUERIES)
    for b, i in zip(brute, indexed):
        assert [m['id'] for m in i['matches']] == [m['id'] for m in b['matches']]
        assert [m['score'] for m in i['matches']] == pytest.approx([m['score'] for m in b['matches']], abs=1e-5)


def test_image_query_finds_itself_first(assets, folder_index, tmp_path):
    query = os.path.join(assets['gallery'], 'img005.jpg')
    for source in (dict(index=folder_index), dict(gallery=assets['gallery'], cache_file=str(tmp_path / 'f.npz'))):
        matches = ImageToImageRetrievalInferencer(assets['model'], topk=3, **source)(query)[0]['matches']
        assert matches[0]['id'] == 'img005.jpg' and matches[0]['score'] == pytest.approx(1.0, abs=1e-5)
        assert matches[1]['score'] < 0.9999


def test_tsv_and_webdataset_galleries_give_the_same_index(assets, folder_index, tmp_path):
    for name in ('tsv', 'shards'):
        out = str(tmp_path / f'{name}.index')
        build_tool().main([assets['ckpt'], assets[name], '--out', out, '--batch-size', '8', '--no-progress'])
        assert_same_index(out, folder_index)


def test_another_model_is_refused(assets, folder_index):
    from cnclip_mm.models.builder import init_model
    with pytest.raises(ModelMismatchError, match='weights: index has') as info:
        build_tool().main([assets['other_ckpt'], assets['gallery'], '--out', folder_index, '--no-progress'])
    assert folder_index in str(info.value) and assets['ckpt'] in str(info.value)
    with pytest.raises(ModelMismatchError):
        TextToImageRetrievalInferencer(init_model(None, assets['other_ckpt']), index=folder_index)


def test_killed_build_resumes_to_the_same_index(assets, folder_index, tmp_path):
    """SIGKILL a build right after its first save; the rerun skips what was saved and ends identical."""
    out = tmp_path / 'killed.index'
    cmd = [sys.executable, str(REPO / 'tools' / 'index' / 'build_index.py'), assets['ckpt'], assets['gallery'],
           '--out', str(out), '--batch-size', '1', '--save-every', '1', '--no-progress']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.monotonic() + 120
    while not (out / 'CURRENT').is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    proc.stderr.close()
    partial = len(open_index(str(out)))
    assert 0 < partial < GALLERY_SIZE
    index = build_tool().main([assets['ckpt'], assets['gallery'], '--out', str(out), '--batch-size', '8',
                               '--no-progress'])
    assert len(index) == GALLERY_SIZE
    assert_same_index(str(out), folder_index)
    assert len(os.listdir(out)) == 2  # CURRENT and the one version it names


def test_add_and_delete_by_id(assets, folder_index, tmp_path):
    import shutil
    out = str(tmp_path / 'copy.index')
    shutil.copytree(folder_index, out)
    index = build_tool().main([assets['ckpt'], '--out', out, '--delete', 'img001.jpg', 'img002.jpg'])
    assert len(index) == GALLERY_SIZE - 2 and 'img001.jpg' not in open_index(out)
    index = build_tool().main([assets['ckpt'], assets['gallery'], '--out', out, '--no-progress'])  # re-adds 2
    assert_same_index(out, folder_index)


def test_demo_searches_the_index(assets, folder_index):
    from cnclip_mm.apis.web_demo import build_demo
    demo = build_demo(assets['model'], gallery=assets['gallery'], index=folder_index, topk=4)
    fns = {f.api_name: f.fn for f in demo.fns.values()}
    expected = TextToImageRetrievalInferencer(assets['model'], index=folder_index, topk=4)(QUERIES[0])[0]['matches']
    thumbs, table, _ = fns['search'](QUERIES[0], 4)
    assert [row[1] for row in table] == [m['id'] for m in expected] and len(thumbs) == 4
    upload = dict(path=os.path.join(assets['gallery'], 'img003.jpg'), orig_name='img003.jpg')
    thumbs, table = fns['search_image'](upload, 3)
    assert table[0][1] == 'img003.jpg' and len(thumbs) == 3
    index_only = build_demo(assets['model'], index=folder_index, topk=4)  # no gallery: the table, no thumbnails
    thumbs, table, _ = {f.api_name: f.fn for f in index_only.fns.values()}['search'](QUERIES[0], 4)
    assert thumbs == [] and [row[1] for row in table] == [m['id'] for m in expected]


def test_milvus_lite_behind_the_same_api(assets, folder_index, tmp_path):
    """A Milvus Lite file (the client a Milvus server URL uses too): build, search, delete, refuse a model."""
    uri = str(tmp_path / 'gallery.db')
    build_tool().main([assets['ckpt'], assets['gallery'], '--out', uri, '--batch-size', '8', '--no-progress'])
    faiss_results = TextToImageRetrievalInferencer(assets['model'], index=folder_index, topk=5)(QUERIES)
    milvus_results = TextToImageRetrievalInferencer(assets['model'], index=uri, topk=5)(QUERIES)
    for f, m in zip(faiss_results, milvus_results):
        assert [x['id'] for x in m['matches']] == [x['id'] for x in f['matches']]
        assert [x['score'] for x in m['matches']] == pytest.approx([x['score'] for x in f['matches']], abs=1e-5)
    index = open_index(uri)
    assert index.delete(['img004.jpg', 'nope']) == 1 and len(index) == GALLERY_SIZE - 1
    np.testing.assert_allclose(index.get_vectors(['img007.jpg']), open_index(folder_index).get_vectors(['img007.jpg']),
                               atol=1e-6)
    with pytest.raises(ModelMismatchError):
        build_tool().main([assets['other_ckpt'], assets['gallery'], '--out', uri, '--no-progress'])
