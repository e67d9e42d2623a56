"""ZeroShotClassesHook + ZeroShotAccuracy through a real Runner equal a direct computation."""
import pytest
import torch
import torch.nn.functional as F
from eval_fixtures import cifar_images, write_cifar100
from mmengine.runner import Runner

from cnclip_mm.evaluation import ZeroShotClassesHook, load_templates
from cnclip_mm.registry import MODELS

TEMPLATES = ['一张{}的照片', '{}的模糊照片']
N = 10


def _direct(model, classes, templates, images):
    """Zero-shot logits computed here from extract_text_feat / extract_image_feat only."""
    with torch.no_grad():
        class_emb = []
        for name in classes:
            feats = model.extract_text_feat([t.format(name) for t in templates])
            class_emb.append(F.normalize(feats, dim=-1).mean(0))
        class_emb = F.normalize(torch.stack(class_emb), dim=-1)
        pixels = torch.from_numpy(images).permute(0, 3, 1, 2)
        img = model.extract_image_feat(model.data_preprocessor.normalize(pixels))
        return 100 * img @ class_emb.T


def _accuracy(logits, labels, k):
    top = logits.topk(k, dim=1).indices
    return 100.0 * (top == torch.as_tensor(labels)[:, None]).any(1).float().mean().item()


def test_runner_zeroshot_matches_direct(tmp_path, tiny_model_cfg):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg).eval()
    from cnclip_mm.datasets.cifar100_classes import CIFAR100_CHINESE
    logits = _direct(model, CIFAR100_CHINESE, TEMPLATES, cifar_images(N, seed=3))
    # half the labels agree with the model's top-1, so the expected accuracy is far from 0
    pred = logits.argmax(1).tolist()
    labels = [pred[i] if i % 2 == 0 else (pred[i] + 1 + i) % 100 for i in range(N)]
    write_cifar100(str(tmp_path / 'cifar'), labels, seed=3)

    hook = ZeroShotClassesHook(templates=TEMPLATES, batch_size=64)
    runner = Runner(
        model=model,
        work_dir=str(tmp_path / 'work'),
        test_dataloader=dict(
            dataset=dict(type='CIFAR100Dataset', data_root=str(tmp_path / 'cifar'), test_mode=True,
                         pipeline=[dict(type='LoadImage'), dict(type='ResizeExact', scale=32),
                                   dict(type='PackCLIPInputs')]),
            sampler=dict(type='DefaultSampler', shuffle=False), batch_size=4, num_workers=0),
        test_cfg=dict(type='TestLoop'),
        test_evaluator=dict(type='ZeroShotAccuracy'),
        custom_hooks=[hook],
        default_scope='cnclip_mm',
    )
    calls = []
    original = model.set_zeroshot_classes
    model.set_zeroshot_classes = lambda *a, **kw: calls.append(1) or original(*a, **kw)
    metrics = runner.test()
    assert len(calls) == 1  # once per evaluation, cached for every batch
    assert model.class_embeddings is None  # cleared after the epoch
    assert metrics['zeroshot/top1'] == _accuracy(logits, labels, 1)
    assert metrics['zeroshot/top5'] == _accuracy(logits, labels, 5)
    assert metrics['zeroshot/top1'] >= 50.0


def test_hook_class_sources(tmp_path):
    names = tmp_path / 'names.txt'
    names.write_text('猫\n\n狗\n', encoding='utf-8')
    tpl = tmp_path / 'tpl.txt'
    tpl.write_text('{}的照片\n一张{}\n', encoding='utf-8')
    hook = ZeroShotClassesHook(classes=str(names), templates=str(tpl))
    assert hook.classes == ['猫', '狗'] and hook.templates == ['{}的照片', '一张{}']
    assert len(load_templates('cifar100')) == 11 and len(load_templates(None)) == 183
    tpl.write_text('没有占位符\n', encoding='utf-8')
    with pytest.raises(ValueError, match='exactly one'):
        load_templates(str(tpl))
    with pytest.raises(FileNotFoundError, match='neither a built-in set'):
        load_templates(str(tmp_path / 'missing.txt'))
