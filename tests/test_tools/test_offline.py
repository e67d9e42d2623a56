"""No hub, no vocab_file anywhere: tools/test.py runs shipped configs end to end on tiny data."""
import sys
from pathlib import Path

import torch

from cnclip_mm.apis import init_model

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import load_tool, write_cifar100, write_retrieval_tsv  # noqa: E402

test_tool = load_tool('test.py')

# A tiny model over a shipped leaf config; the tokenizer, the 224 px pipelines and the data layout stay as shipped.
TINY = """_base_ = [{leaf!r}]
model = dict(
    embed_dim=32,
    image_encoder=dict(arch=dict(_delete_=True, width=32, layers=1, heads=2, patch_size=32)),
    text_encoder=dict(arch=dict(_delete_=True, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64), vocab_size=21128))
test_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(data_root={root!r}))
val_dataloader = None
val_cfg = None
val_evaluator = None
"""


def _run(tmp_path, leaf: str, root: str) -> dict:
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(TINY.format(leaf=str(REPO / 'configs' / leaf), root=root), encoding='utf-8')
    assert 'vocab_file' not in cfg.read_text() and 'tokenizer' not in cfg.read_text()
    torch.manual_seed(0)
    model = init_model(str(cfg))
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), tmp_path / 'tiny.pth')
    return test_tool.main([str(cfg), str(tmp_path / 'tiny.pth'), '--work-dir', str(tmp_path / 'work')])


def test_zeroshot_cifar100_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    write_cifar100(str(tmp_path / 'cifar100'), [3, 14, 15, 92, 65, 35], seed=2)
    metrics = _run(tmp_path, 'zeroshot_cifar100.py', str(tmp_path / 'cifar100'))
    assert set(metrics) == {'zeroshot/top1', 'zeroshot/top5'}
    assert 0 <= metrics['zeroshot/top1'] <= metrics['zeroshot/top5'] <= 100


def test_retrieval_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    write_retrieval_tsv(str(tmp_path / 'flickr'), split='test')
    metrics = _run(tmp_path, 'retrieval_flickr30k-cn_vit-b-16.py', str(tmp_path / 'flickr'))
    assert {'retrieval/t2i_R@1', 'retrieval/i2t_R@1', 'retrieval/mean_recall'} <= set(metrics)
