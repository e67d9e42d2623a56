"""FSDP auto-wrap policies: per block / per Linear units shard every block's parameters across ranks, and
2-process gloo FSDP trains like 2-process DDP and like one process on the global batch (AdamW with weight
decay: the decay groups are decided on the original parameters, not on FSDP's flat 1-D shards)."""
import copy
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from torch import nn
from torch.distributed.fsdp import FullStateDictConfig, StateDictType
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp._common_utils import clean_tensor_name

from cnclip_mm.engine.runner import CLIPDistributedDataParallel, CLIPFullyShardedDataParallel
from cnclip_mm.engine.runner.fsdp import wrap_policy
from cnclip_mm.registry import DATASETS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from tests.conftest import TINY_MODEL
from tests.test_engine.conftest import write_tiny_tsv
from tests.test_losses.test_contrastive import _free_port

STEPS, WORLD = 3, 2
BLOCKS = ('ResidualAttentionBlock', 'BertLayer')


def _model() -> nn.Module:
    init_default_scope('cnclip_mm')
    cfg = copy.deepcopy(TINY_MODEL)
    cfg['text_encoder']['arch'].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # 1 process == 2
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _batch(data_root: str) -> list:
    init_default_scope('cnclip_mm')
    tokenizer = TINY_MODEL['tokenizer']
    pipeline = [dict(type='LoadImage'), dict(type='ResizeExact', scale=32),
                dict(type='TokenizeText', tokenizer=tokenizer), dict(type='PackCLIPInputs')]
    dataset = DATASETS.build(dict(type='ImageTextTSVDataset', data_root=data_root, split='train', pipeline=pipeline))
    return [dataset[i] for i in range(8)]


def _optim_wrapper(model: nn.Module):
    return OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='CLIPOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98),
                                                                   eps=1e-6, weight_decay=0.2))))(model)


def _train(model: nn.Module, samples: list) -> dict:
    optim_wrapper = _optim_wrapper(model)
    model.train()
    for _ in range(STEPS):
        model.train_step(pseudo_collate(samples), optim_wrapper)
    decayed = sorted(optim_wrapper.optimizer.param_groups[0]['names'])
    if isinstance(model, FSDP):
        with FSDP.state_dict_type(model, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(offload_to_cpu=False, rank0_only=False)):
            state = model.state_dict()
    else:
        state = (model.module if hasattr(model, 'module') else model).state_dict()
    return dict(state={k: v.detach().clone() for k, v in state.items()}, decayed=decayed)


def _local_fractions(model: nn.Module, units: tuple) -> dict:
    """Per module of the ``units`` classes: the share of its parameters this rank holds (FSDP shards)."""
    fractions = {}
    for name, module in model.named_modules():
        if type(module).__name__ in units:
            held = sum(p.numel() for p in module.parameters())
            fractions[name] = held / sum(s.numel() for k, s in model.original_shapes.items()
                                         if k.startswith(clean_tensor_name(name + '.')))
    return fractions


def _worker(rank, port, data_root, policy, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    samples = _batch(data_root)[rank * 4:(rank + 1) * 4]
    result = {}
    result['ddp'] = _train(CLIPDistributedDataParallel(_model()), samples)
    model = CLIPFullyShardedDataParallel(_model(), use_orig_params=True, sync_module_states=True,
                                         wrap_classes=policy)
    result['fractions'] = _local_fractions(model, BLOCKS if policy == 'blocks' else ('Linear',))
    result['fsdp'] = _train(model, samples)
    torch.save(result, os.path.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


@pytest.mark.parametrize('policy', ['blocks', 'linears'])
def test_fsdp_policy_shards_per_unit_and_equals_ddp_and_one_process(tmp_path, policy):
    write_tiny_tsv(str(tmp_path), 'train', 8, seed=0)
    torch.set_num_threads(1)
    single = _train(_model(), _batch(str(tmp_path)))
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(_free_port(), str(tmp_path), policy, out), nprocs=WORLD, join=True)
        results = [torch.load(os.path.join(out, f'rank{r}.pt')) for r in range(WORLD)]
    for mode in ('ddp', 'fsdp'):
        assert results[0][mode]['decayed'] == single['decayed'], mode  # names and groups as without FSDP
        got = results[0][mode]['state']
        assert got.keys() == single['state'].keys()
        diff = max((got[k] - single['state'][k]).abs().max().item() for k in got)
        assert diff < 1e-5, (mode, diff)
    assert 'image_encoder.proj' in single['decayed'] and 'text_projection' in single['decayed']
    moved = max((single['state'][k] - _model().state_dict()[k]).abs().max().item() for k in single['state'])
    assert moved > 1e-4  # the steps trained
    for rank in range(WORLD):
        fractions = results[rank]['fractions']
        linears = sum(isinstance(m, nn.Linear) for m in _model().modules())  # 3 per ViT block, 6 per BERT layer
        assert len(fractions) == (4 if policy == 'blocks' else linears) and linears == 18, fractions  # 2 + 2 blocks
        for name, share in fractions.items():  # each unit split in halves, not whole units per rank
            assert 0.4 < share < 0.6, (rank, name, share)


def test_wrap_policy_resolves_classes_by_name():
    model = _model()
    policy = wrap_policy(model, 'blocks')
    assert {c.__name__ for c in policy._module_classes} == set(BLOCKS)
    assert {c.__name__ for c in wrap_policy(model, ['Linear'])._module_classes} == {'Linear'}
    with pytest.raises(ValueError, match='unknown preset'):
        wrap_policy(model, 'layers')
    with pytest.raises(ValueError, match=r"no module of the model has one of these classes.*'BertLayer'"):
        wrap_policy(model, ['NoSuchBlock'])
