"""Truncated captions are counted (also in loader workers) and logged per epoch, summed over ranks."""
import copy
import json
import os.path as osp
from types import SimpleNamespace

from mmengine.config import Config

import cnclip_mm.datasets.truncation as truncation
from cnclip_mm.datasets import TruncationReportHook
from cnclip_mm.registry import TRANSFORMS
from tests.conftest import REPO
from tests.test_engine.conftest import tiny_runner_cfg, train_logging, write_tiny_tsv


def test_counts_made_in_workers_reach_the_hook_and_reset(vocab_file, monkeypatch):
    from torch.utils.data import DataLoader
    step = TRANSFORMS.build(dict(type='TokenizeText', tokenizer=dict(type='ChineseTokenizer', vocab_file=vocab_file,
                                                                     context_length=6)))
    texts = ['一二三四', '一二三四五六七', '一二三四五六七八', '猫']  # 2 of 4 need more than 4 tokens
    dataset = SimpleNamespace(pipeline=SimpleNamespace(transforms=[step]))
    loader = DataLoader([dict(text=t, text_source=f'line {i + 1}') for i, t in enumerate(texts)] * 2,
                        batch_size=2, num_workers=2, collate_fn=lambda batch: [step(x) for x in batch])
    for _ in loader:
        pass
    assert (step.truncation.count, step.truncation.seen) == (4, 8)  # recorded in workers, seen here
    logs = []
    monkeypatch.setattr(truncation, 'print_log', lambda msg, **kw: logs.append((msg, kw['level'])))
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=dataset), epoch=3)
    TruncationReportHook().after_train_epoch(runner)
    (msg, level), = logs
    assert msg.startswith('epoch 3: TokenizeText: 4 of 8 caption(s) (50.00%) longer than the context length 6')
    assert "line 2 '一二三四五六七'..." in msg and level == 30
    assert (step.truncation.count, step.truncation.seen) == (0, 0)
    # Two ranks: rank 0 logs the sums and each rank's count.
    step.truncation.record(True, 'here')
    monkeypatch.setattr(truncation, 'get_world_size', lambda: 2)
    monkeypatch.setattr(truncation, 'get_rank', lambda: 0)
    monkeypatch.setattr(truncation, 'all_gather_object', lambda obj: [obj, (2, 5, ['there'])])
    assert step.truncation.report('validation', 6) == (3, 6)
    assert '3 of 6 caption(s)' in logs[-1][0] and '(rank 0: 1, rank 1: 2)' in logs[-1][0]
    assert logs[-1][0].endswith('here\n  there')


def test_tiny_run_logs_the_truncation_count_per_epoch(tmp_path):
    assert Config.fromfile(osp.join(REPO, 'configs/_base_/default_runtime.py')).default_hooks.truncation.type \
        == 'TruncationReportHook'
    write_tiny_tsv(str(tmp_path), 'train', 16, seed=0)
    with open(tmp_path / 'train_texts.jsonl', encoding='utf-8') as f:
        lengths = [len(json.loads(line)['text']) for line in f]
    expected = sum(n + 2 > 8 for n in lengths)  # '一个红色的圆' fits 8 ids, '一个红色的方块' does not
    assert 0 < expected < 16
    from cnclip_mm.engine import CLIPRunner
    cfg = tiny_runner_cfg(str(tmp_path / 'work'), str(tmp_path), max_epochs=2, batch_size=16,
                          custom_hooks=[dict(type='TruncationReportHook')])
    cfg['default_hooks']['checkpoint'] = None
    cfg['tokenizer'] = dict(copy.deepcopy(cfg['model']['tokenizer']), context_length=8)
    from cnclip_mm.utils import share_tokenizer
    for step in cfg['train_dataloader']['dataset']['pipeline']:
        step.pop('tokenizer', None)
    cfg['model'].pop('tokenizer')
    messages = train_logging(CLIPRunner.from_cfg(Config(share_tokenizer(cfg))))
    lines = [m for m in messages if 'longer than the context length 8' in m]
    assert [m.split(':')[0] for m in lines] == ['epoch 0', 'epoch 1']
    assert all(f'{expected} of 16 caption(s)' in m for m in lines)
