"""ONNX export with the default settings, each in a fresh process (the export is the process's first forward):
the demo checkpoint (its 256-id vocab) with the onnxruntime inferencer, and tiny RN50 and ViT checkpoints in
the official format through tools/deployment/export_onnx.py. A failed export leaves nothing behind."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from cnclip_mm.datasets.demo import demo_vocab
from cnclip_mm.deployment import export_towers
from cnclip_mm.deployment.onnx_export import TraceFrozeValueError
from cnclip_mm.models.converters import mm_to_official
from cnclip_mm.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'deployment' / 'export_onnx.py'
# Tiny versions of the shipped model bases (their tokenizer: the shipped vocab, context 52).
TINY = {
    'rn50': """_base_ = [{base!r}]
model = dict(embed_dim=32, image_encoder=dict(arch=dict(_delete_=True, layers=(1, 1, 1, 1), width=8), img_size=64),
             text_encoder=dict(arch=dict(_delete_=True, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64)))
""",
    'vit': """_base_ = [{base!r}]
model = dict(embed_dim=32, image_encoder=dict(arch=dict(_delete_=True, width=32, layers=2, heads=2, patch_size=16),
                                              img_size=32),
             text_encoder=dict(arch=dict(_delete_=True, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64)))
""",
}
BASES = {'rn50': 'configs/_base_/models/rn50.py', 'vit': 'configs/_base_/models/vit-b-16.py'}

DEMO = textwrap.dedent('''
    import sys, runpy
    import numpy as np
    from PIL import Image
    config, ckpt, vocab, out = sys.argv[1:5]
    runpy.run_path(sys.argv[5], run_name='export')['main']([config, ckpt, '--out-dir', out])
    from cnclip_mm.apis import ImageClassificationInferencer
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    kwargs = dict(pretrained=ckpt, vocab_file=vocab, classes=['红色圆形', '蓝色正方形'], templates=['一个{}'])
    for backend in ('pytorch', 'onnxruntime'):
        for result in ImageClassificationInferencer(config, backend=backend, onnx_dir=out, **kwargs)(images):
            print(backend, ' '.join(f'{s:.6f}' for s in result['pred_scores']))
''')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """``{kind: (config, checkpoint)}``: the demo model in this project's format, RN50 / ViT officially."""
    folder = tmp_path_factory.mktemp('fresh_export')
    made = {}
    torch.manual_seed(0)
    demo = MODELS.build(Config.fromfile(str(REPO / 'configs/demo/stage2.py')).model)
    torch.save(dict(state_dict=demo.state_dict(), meta=dict(epoch=12)), folder / 'epoch_12.pth')
    made['demo'] = (str(REPO / 'configs/demo/stage2.py'), str(folder / 'epoch_12.pth'))
    for kind, text in TINY.items():
        config = folder / f'tiny_{kind}.py'
        config.write_text(text.format(base=str(REPO / BASES[kind])), encoding='utf-8')
        model = MODELS.build(Config.fromfile(str(config)).model)
        torch.save(dict(epoch=1, state_dict=mm_to_official(model.state_dict())), folder / f'clip_cn_{kind}.pt')
        made[kind] = (str(config), str(folder / f'clip_cn_{kind}.pt'))
    (folder / 'vocab.txt').write_text('\n'.join(demo_vocab()) + '\n', encoding='utf-8')
    made['vocab'] = str(folder / 'vocab.txt')
    return folder, made


def test_each_export_in_a_fresh_process(checkpoints):
    folder, made = checkpoints
    runs = {'demo': [sys.executable, '-c', DEMO, *made['demo'], made['vocab'], str(folder / 'onnx_demo'), str(TOOL)]}
    runs.update({kind: [sys.executable, str(TOOL), *made[kind], '--out-dir', str(folder / f'onnx_{kind}')]
                 for kind in ('rn50', 'vit')})
    procs = {kind: subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for kind, cmd in runs.items()}  # side by side: each one's first forward is its export
    outputs = {kind: proc.communicate(timeout=600) for kind, proc in procs.items()}
    for kind, proc in procs.items():
        assert proc.returncode == 0, f'{kind}:\n{outputs[kind][1][-3000:]}'
        assert {p.name for p in (folder / f'onnx_{kind}').iterdir()} == {'image.onnx', 'text.onnx', 'meta.json'}
    for kind in ('rn50', 'vit'):  # validated on other ids than the trace's, full-context texts included
        assert 'short to full-context texts' in outputs[kind][0]
    scores = {}
    for line in outputs['demo'][0].splitlines():
        backend, *values = line.split()
        if backend in ('pytorch', 'onnxruntime'):
            scores.setdefault(backend, []).append([float(v) for v in values])
    assert len(scores['pytorch']) == 3
    np.testing.assert_allclose(scores['onnxruntime'], scores['pytorch'], atol=1e-4)


def test_tracer_warning_is_an_error_and_leaves_nothing(tmp_path, tiny_model_cfg):
    model = MODELS.build(tiny_model_cfg).eval()
    encode = model.extract_text_feat

    def frozen_length(ids):  # a Python int of a traced size: the graph would keep the example's length
        return encode(ids[:, :int(ids.shape[1])])
    model.extract_text_feat = frozen_length
    with pytest.raises(TraceFrozeValueError, match='text tower.*test_export_fresh.py'):
        export_towers(model, str(tmp_path / 'out'))
    assert list(tmp_path.iterdir()) == []
