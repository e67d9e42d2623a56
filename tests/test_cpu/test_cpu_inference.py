"""The inference APIs' ``cpu_speed`` and ``bf16`` options: same features to float rounding, nothing left behind."""
import numpy as np
import torch
import torch.nn.functional as F

from cnclip_mm.apis.inference import encode_images, encode_texts
from cnclip_mm.cpu import mode
from cnclip_mm.registry import MODELS

IMAGES = [np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(3)]
TEXTS = ['一只在草地上奔跑的狗', '猫', '蓝色背景上左上角有一个大的红色圆形'] * 3


def _model(cfg):
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def test_cpu_speed_changes_speed_not_features(tiny_model_cfg, monkeypatch):
    from cnclip_mm.cpu import onednn
    monkeypatch.setattr(onednn, 'MIN_MACS', 0)  # the tiny model's products take oneDNN too
    monkeypatch.setattr(onednn, 'cpu_vendor', lambda: 'AuthenticAMD')
    monkeypatch.setattr(onednn.platform, 'machine', lambda: 'x86_64')
    routed, real = [], onednn.linear
    monkeypatch.setattr(onednn, 'linear', lambda *a: routed.append(1) or real(*a))
    model = _model(tiny_model_cfg)
    threads = torch.get_num_threads()
    for encode, data in ((encode_images, IMAGES), (encode_texts, TEXTS)):
        fast, plain = encode(model, data, cpu_speed=True), encode(model, data, cpu_speed=False)
        torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    assert routed and not mode.active() and torch.get_num_threads() == threads


def test_inference_runs_at_the_callers_thread_count(tiny_model_cfg):
    model = _model(tiny_model_cfg)
    seen = []
    model.image_encoder.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        encode_images(model, IMAGES, cpu_speed=True)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)


def test_bf16_opt_in_cosine(tiny_model_cfg):
    """encode_images / encode_texts(bf16=True): the opt-in bf16 path stays within cosine 0.999 of fp32."""
    model = _model(tiny_model_cfg)
    for encode, data in ((encode_images, IMAGES), (encode_texts, TEXTS)):
        ref, low = encode(model, data), encode(model, data, bf16=True)
        assert not torch.equal(ref, low)  # bf16 really ran
        assert F.cosine_similarity(low, ref).min() >= 0.999
