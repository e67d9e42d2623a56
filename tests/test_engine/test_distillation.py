"""DistillationLoss: the student moves towards a frozen teacher; teacher untouched; accumulation exact."""
import copy

import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.registry import MODELS
from tests.test_engine.test_feature_cache import _batch, _capture, _model


@pytest.fixture
def teacher_ckpt(tiny_model_cfg, tmp_path):
    """A teacher of another variant (wider embedding, 48 px input) saved as an own checkpoint."""
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg['embed_dim'] = 40
    cfg['image_encoder'].update(img_size=48, output_dim=40)
    torch.manual_seed(1)
    teacher = MODELS.build(cfg)
    path = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), path)
    return str(path), cfg


def _distill(tiny_model_cfg, teacher_ckpt, **kw):
    cfg = copy.deepcopy(tiny_model_cfg)
    path, teacher_cfg = teacher_ckpt
    cfg['loss'] = dict(type='DistillationLoss', teacher=dict(config=teacher_cfg, checkpoint=path), **kw)
    return cfg


def _teacher_cos(model, teacher, pre):
    with torch.no_grad():
        images = pre['inputs']['images']
        s = model.extract_image_feat(images)
        t = teacher.extract_image_feat(F.interpolate(images, size=(48, 48), mode='bicubic'))
        s = F.interpolate(s[None], size=t.shape[1], mode='linear', align_corners=False)[0]
        return F.cosine_similarity(s, t, dim=1).mean().item()


def test_student_moves_to_teacher_and_teacher_is_frozen(tiny_data, tiny_model_cfg, teacher_ckpt):
    data = _batch(tiny_data, tiny_model_cfg)
    plain = _model(tiny_model_cfg)
    student = _model(_distill(tiny_model_cfg, teacher_ckpt, cosine_weight=5.0, kl_weight=1.0))
    student.load_state_dict(plain.state_dict())  # same start, state dicts compatible: no teacher keys
    teacher = student.loss_module.teacher
    assert not any(k.startswith('loss_module') for k in student.state_dict())
    assert all(id(p) not in {id(q) for q in student.parameters()} for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    pre = student.data_preprocessor(copy.deepcopy(data), training=True)
    start = _teacher_cos(student, teacher, pre)
    for model in (plain, student):
        optim = torch.optim.AdamW(model.parameters(), lr=2e-3)
        for _ in range(6):
            losses = model(**model.data_preprocessor(copy.deepcopy(data), True), mode='loss')
            optim.zero_grad()
            sum(v for k, v in losses.items() if 'loss' in k).backward()
            optim.step()
    assert {'loss_contrastive', 'loss_distill_cos', 'loss_distill_kl'} <= set(losses)
    with_teacher, without = _teacher_cos(student, teacher, pre), _teacher_cos(plain, teacher, pre)
    assert with_teacher > without + 0.05 and with_teacher > start, (start, without, with_teacher)
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    ema_copy = copy.deepcopy(student)  # EMA's averaged model shares the frozen teacher, no second copy
    assert ema_copy.loss_module.teacher is teacher


def test_accumulation_same_gradients(tiny_data, tiny_model_cfg, teacher_ckpt):
    data = _batch(tiny_data, tiny_model_cfg)
    cfg = _distill(tiny_model_cfg, teacher_ckpt, cosine_weight=1.0, kl_weight=1.0, kl_temperature=2.0)
    ref_model = _model(cfg)
    ref = _capture(ref_model)
    ref_log = ref_model.train_step(copy.deepcopy(data), ref)
    model = _model(cfg, accum_freq=2)
    model.load_state_dict(ref_model.state_dict())
    got = _capture(model)
    log = model.train_step(copy.deepcopy(data), got)
    for key in ('loss', 'loss_contrastive', 'loss_distill_cos', 'loss_distill_kl'):
        assert log[key].item() == pytest.approx(ref_log[key].item(), abs=1e-6), key
    for name, grad in ref.grads.items():
        torch.testing.assert_close(got.grads[name], grad, atol=1e-5, rtol=0, msg=name)


def test_official_detached_cosine_sends_no_gradient(tiny_data, tiny_model_cfg, teacher_ckpt):
    data = _batch(tiny_data, tiny_model_cfg, n=4)
    model = _model(_distill(tiny_model_cfg, teacher_ckpt, detach_student=True))
    losses = model(**model.data_preprocessor(copy.deepcopy(data), True), mode='loss')
    assert losses['loss_distill_cos'].item() > 0 and not losses['loss_distill_cos'].requires_grad
    with pytest.raises(ValueError, match='unknown keys'):
        MODELS.build(dict(type='DistillationLoss', teacher=dict(ckpt='x')))


def test_distill_config_builds(tmp_path):
    from mmengine.config import Config

    from tests.conftest import REPO
    cfg = Config.fromfile(str(REPO / 'configs' / 'demo' / 'finetune_classes_distill.py'))
    cfg.model.tokenizer = None
    torch.manual_seed(0)
    teacher_cfg = dict(cfg.model, loss=None)  # the demo model before fine-tuning
    teacher = MODELS.build(teacher_cfg)
    path = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), path)
    cfg.model.loss.teacher = dict(config=teacher_cfg, checkpoint=str(path))
    student = MODELS.build(cfg.model)
    assert type(student.loss_module).__name__ == 'DistillationLoss'
    assert student.loss_module.contrastive.positives == ('image_id', 'text', 'label')
    assert torch.equal(student.loss_module.teacher.text_projection, teacher.text_projection)
