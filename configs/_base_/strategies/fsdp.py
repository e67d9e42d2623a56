# FSDP (FSDP1, use_orig_params=True) through MMEngine's FlexibleRunner: tools/train.py CONFIG --strategy fsdp
# (merged over the config), or list this file last in a config's _base_. Runs on CPU (gloo) and GPU (nccl).
runner_type = 'CLIPFlexibleRunner'
strategy = dict(
    type='cnclip_mm.CLIPFSDPStrategy',  # mmengine's FSDPStrategy, optimizer-state loading fixed for torch 2.x
    model_wrapper=dict(type='cnclip_mm.CLIPFullyShardedDataParallel', use_orig_params=True,
                       sync_module_states=True,  # rank 0's initial weights everywhere, as DDP
                       # one FSDP unit per ViT / RN50 residual block and BERT layer ('linears': per nn.Linear;
                       # or a list of module class names): each rank holds 1/world of every block
                       wrap_classes='blocks'),
    state_dict_cfg='full',  # checkpoints in the usual single-file layout, written by rank 0
)
model_wrapper_cfg = None  # the strategy wraps the model
