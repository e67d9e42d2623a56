# LoRA on the demo: rank-8 adapters on every Linear of both towers (and the ViT's packed q/k/v) of the
# demo's stage-1 model; its weights stay frozen, checkpoints hold the adapters alone.
# Run tools/run_demo.py (or configs/demo/stage1.py) first for the weights in load_from.
_base_ = ['./stage2.py']
model = dict(
    adapters=dict(
        image=dict(
            type='LoRA',
            target_modules=['attn.out_proj', 'mlp.c_fc', 'mlp.c_proj'],
            target_parameters=['attn.in_proj_weight'],
            r=8,
            alpha=16,
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
            r=8,
            alpha=16,
            dropout=0.05,
        ),
    )
)
optim_wrapper = dict(optimizer=dict(lr=5e-3))
default_hooks = dict(adapter_checkpoint=dict(type='AdapterCheckpointHook'))
load_from = 'work_dirs/demo/stage1/last_checkpoint'
work_dir = 'work_dirs/demo/lora'
