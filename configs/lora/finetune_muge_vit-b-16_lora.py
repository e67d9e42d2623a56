# LoRA fine-tune of Chinese CLIP ViT-B/16 on MUGE: rank-16 adapters on every Linear of both towers and on
# the ViT's packed q/k/v (peft's target_parameters, which takes no dropout); the released weights stay
# frozen, checkpoints hold the adapters alone (a few MB) and name the base they belong to.
# Merge for export: python tools/model_converters/merge_adapters.py work_dirs/.../epoch_3.pth --out merged.pth
_base_ = ['../finetune_muge_vit-b-16.py']
model = dict(
    init_cfg=None,  # the base comes through load_from, which the adapters-only checkpoints point to
    adapters=dict(
        image=dict(
            type='LoRA',
            target_modules=['attn.out_proj', 'mlp.c_fc', 'mlp.c_proj'],
            target_parameters=['attn.in_proj_weight'],
            r=16,
            alpha=32,
            dropout=0.0,
        ),
        text=dict(
            type='LoRA',
            target_modules=[
                'query',
                'key',
                'value',
                'attention.output.dense',
                'intermediate.dense',
                'output.dense',
            ],
            r=16,
            alpha=32,
            dropout=0.05,
        ),
    ),
)
load_from = 'pretrained/clip_cn_vit-b-16.pt'
# Adapters start at zero and have few weights: a larger step than the full fine-tune's 5e-5.
optim_wrapper = dict(optimizer=dict(lr=5e-4))
default_hooks = dict(adapter_checkpoint=dict(type='AdapterCheckpointHook'))
