"""tools/test.py end to end: tiny CIFAR-100 and tiny TSV retrieval, checkpoints in three formats."""
import json
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.evaluation import RetrievalRecall
from cnclip_mm.models.converters import export_hf, mm_to_official
from cnclip_mm.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import (  # noqa: E402
    TINY_SIZE,
    load_tool,
    tiny_test_config,
    write_cifar100,
    write_elevater,
    write_retrieval_tsv,
)

test_tool = load_tool('test.py')

def _checkpoints(tmp_path, cfg_file: str) -> dict:
    """The same random weights as own .pth, official .pt and a Hugging Face folder."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_file).model)
    own = tmp_path / 'own.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), own)
    official = tmp_path / 'epoch_latest.pt'
    torch.save(dict(epoch=1, step=10, name='tiny', state_dict=mm_to_official(model.state_dict())), official)
    hf = export_hf(model, str(tmp_path / 'hf'))
    return dict(model=model, own=str(own), official=str(official), hf=hf)


def test_zeroshot_cifar_three_formats(tmp_path, vocab_file):
    write_cifar100(str(tmp_path / 'cifar100'), [i * 7 % 100 for i in range(8)], seed=1)
    cfg = tiny_test_config(tmp_path, 'zeroshot_cifar100.py', str(tmp_path / 'cifar100'), vocab_file, retrieval=False)
    ckpts = _checkpoints(tmp_path, cfg)
    results = {}
    for fmt in ('own', 'official', 'hf'):
        out = tmp_path / f'metrics_{fmt}.json'
        show = ['--show-dir', 'show'] if fmt == 'own' else []
        results[fmt] = test_tool.main([cfg, ckpts[fmt], '--work-dir', str(tmp_path / f'work_{fmt}'),
                                       '--out', str(out)] + show)
        assert json.loads(out.read_text()) == pytest.approx(results[fmt])
    assert set(results['own']) == {'zeroshot/top1', 'zeroshot/top5'}
    assert results['official'] == pytest.approx(results['own'])
    assert results['hf'] == pytest.approx(results['own'])
    picture = tmp_path / 'work_own' / 'show' / 'zeroshot_examples.png'
    assert picture.stat().st_size > 5000


def test_elevater_folder(tmp_path, vocab_file):
    root = write_elevater(str(tmp_path / 'elevater'), ['猫', '狗', '汽车'])
    cfg = tiny_test_config(tmp_path, 'zeroshot_elevater.py', root, vocab_file, retrieval=False)
    ckpt = _checkpoints(tmp_path, cfg)['own']
    metrics = test_tool.main([cfg, ckpt, '--work-dir', str(tmp_path / 'work')])
    # 3 classes: top-5 covers every class, top-1 is a multiple of 1/6
    assert metrics['zeroshot/top5'] == 100.0
    assert any(metrics['zeroshot/top1'] == pytest.approx(100 * i / 6) for i in range(7))


def _direct_recall(model, tmp_path, data) -> dict:
    """Recall computed here from extract_*_feat on the same files, without the tool."""
    import base64
    import io

    import numpy as np
    from PIL import Image
    root = tmp_path / 'flickr'
    pixels = []
    for line in (root / 'test_imgs.tsv').read_text().splitlines():
        raw = base64.b64decode(line.split('\t')[1])
        img = Image.open(io.BytesIO(raw)).convert('RGB').resize((TINY_SIZE, TINY_SIZE), Image.BICUBIC)
        pixels.append(np.asarray(img))
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
    with torch.no_grad():
        img_feats = model.eval().extract_image_feat(model.data_preprocessor.normalize(images))
        txt_feats = model.extract_text_feat([t['text'] for t in data['texts']])
    return RetrievalRecall.calculate(img_feats, txt_feats, data['image_ids'],
                                     [t['image_ids'] for t in data['texts']])


def test_retrieval_three_formats_show_dir(tmp_path, vocab_file):
    data = write_retrieval_tsv(str(tmp_path / 'flickr'), split='test', num_images=6, seed=2)
    cfg = tiny_test_config(tmp_path, 'retrieval_flickr30k-cn_vit-b-16.py', str(tmp_path / 'flickr'), vocab_file,
                  retrieval=True)
    ckpts = _checkpoints(tmp_path, cfg)
    expected = {f'retrieval/{k}': v for k, v in _direct_recall(ckpts['model'], tmp_path, data).items()}
    for fmt in ('own', 'official', 'hf'):
        args = [cfg, ckpts[fmt], '--work-dir', str(tmp_path / f'work_{fmt}')]
        if fmt == 'own':
            args += ['--show-dir', str(tmp_path / 'show')]
        metrics = test_tool.main(args)
        assert metrics == pytest.approx(expected), fmt
    pictures = sorted((tmp_path / 'show').glob('retrieval_*.png'))
    assert len(pictures) == 5 and all(p.stat().st_size > 1000 for p in pictures)


def test_missing_data_says_where_and_how(tmp_path, vocab_file):
    cfg = tiny_test_config(tmp_path, 'zeroshot_cifar100.py', str(tmp_path / 'nowhere'), vocab_file, retrieval=False)
    ckpt = tmp_path / 'own.pth'
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(cfg).model).state_dict()), ckpt)
    with pytest.raises(FileNotFoundError) as info:
        test_tool.main([cfg, str(ckpt), '--work-dir', str(tmp_path / 'work')])
    message = str(info.value)
    assert str(tmp_path / 'nowhere') in message and 'cifar-100-python.tar.gz' in message


def test_distributed_two_ranks_drop_padding(tmp_path, vocab_file):
    """torchrun with 2 CPU ranks (gloo): 7 images + 8 texts = 15 items, so one rank gets a padding
    duplicate; the metrics must equal the single-process run."""
    import os
    import subprocess
    write_retrieval_tsv(str(tmp_path / 'flickr'), split='test', num_images=7, seed=4)
    cfg = tiny_test_config(tmp_path, 'retrieval_flickr30k-cn_vit-b-16.py', str(tmp_path / 'flickr'), vocab_file,
                           retrieval=True)
    ckpt = _checkpoints(tmp_path, cfg)['own']
    single = test_tool.main([cfg, ckpt, '--work-dir', str(tmp_path / 'single')])
    out = tmp_path / 'dist.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29531',
           str(REPO / 'tools' / 'test.py'), cfg, ckpt, '--launcher', 'pytorch', '--out', str(out),
           '--work-dir', str(tmp_path / 'dist'), '--show-dir', str(tmp_path / 'show')]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text()) == pytest.approx(single)
    assert len(list((tmp_path / 'show').glob('retrieval_*.png'))) == 5
