# The demo's stage 1 with a 128-token context (demo default: 32): the same tiny model and data, the text
# tower's positions beyond 32 come into use. python tools/train.py configs/long_text/demo_stage1_ctx128.py
_base_ = ['../demo/stage1.py']
tokenizer = dict(context_length=128)
work_dir = 'work_dirs/long_text/demo_stage1_ctx128'
