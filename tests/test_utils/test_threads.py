"""Thread settings: the order of precedence, and that dataloader workers really run with them."""
import cv2
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch.utils.data import Dataset

from cnclip_mm.utils.threads import apply_to_config, choose_threads


class _ThreadProbe(Dataset):
    """Each item reports the thread settings of the process that loads it."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        import numpy as np
        return dict(torch=torch.get_num_threads(), cv2=cv2.getNumThreads(),
                    pid=torch.utils.data.get_worker_info().id, draw=float(np.random.rand()))


def test_precedence_flag_env_auto():
    assert choose_threads(3, env={'OMP_NUM_THREADS': '1'}).threads == 3
    plan = choose_threads(None, env={'OMP_NUM_THREADS': '1'}, cpus=8, idle=8)
    assert (plan.threads, plan.source) == (1, 'OMP_NUM_THREADS')
    # 16 cores, 4 local ranks, 2 workers each -> 2 intra-op threads per rank.
    assert choose_threads(env={}, cpus=16, local_world_size=4, num_workers=2, idle=16).threads == 2
    assert choose_threads(env={'LOCAL_WORLD_SIZE': '2'}, cpus=8, idle=8).threads == 4
    assert choose_threads(env={}, cpus=2, num_workers=2, idle=2).threads == 1  # never below 1
    busy = choose_threads(env={}, cpus=8, idle=0.3)  # other jobs hold the cores
    assert busy.threads == 1 and 'busy' in busy.describe()
    with pytest.raises(ValueError, match='OMP_NUM_THREADS'):
        choose_threads(env={'OMP_NUM_THREADS': 'four'})


def test_applied_in_main_process_and_workers(monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    before = torch.get_num_threads()
    cv2.setNumThreads(4)  # what a worker would inherit without the init function
    loader = dict(batch_size=1, num_workers=2, dataset=_ThreadProbe(),
                  sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'))
    cfg = Config(dict(train_dataloader=loader, randomness=dict(seed=3), env_cfg=dict(num_threads=1)))
    try:
        plan = apply_to_config(cfg)
        assert (plan.threads, plan.source) == (1, 'requested') and torch.get_num_threads() == 1
        # the worker count is read in the worker (it may still be 'auto' here)
        assert cfg.train_dataloader.worker_init_fn == dict(type='cnclip_mm.threads_worker_init', seed=3)
        runs = []
        for _ in range(2):
            built = Runner.build_dataloader(cfg.train_dataloader.to_dict() | dict(dataset=_ThreadProbe()),
                                            seed=3)
            runs.append(list(built))
    finally:
        torch.set_num_threads(before)
    rows = runs[0]
    assert {int(r['pid']) for r in rows} == {0, 1}
    assert all(int(r['torch']) == 1 and int(r['cv2']) == 1 for r in rows)
    # mmengine's seeding still happens: numpy draws differ per worker and repeat run to run.
    draws = [float(r['draw']) for r in rows]
    assert draws == [float(r['draw']) for r in runs[1]] and len(set(draws)) == 4
