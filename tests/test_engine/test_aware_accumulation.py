"""Feature-cache accumulation carries the sample keys: aware loss, K micro-batches = one big batch."""
import copy

import pytest
import torch

from tests.test_engine.test_feature_cache import _batch, _capture, _model


def _aware(tiny_model_cfg):
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg['loss'] = dict(type='ContrastiveLoss', positives=('image_id', 'text', 'label'))
    return cfg


def test_aware_loss_same_gradients_with_accumulation(tiny_data, tiny_model_cfg):
    data = _batch(tiny_data, tiny_model_cfg)
    samples = data['data_samples']
    samples[5].set_metainfo(dict(image_id=samples[0].image_id))  # across micro-batches (K=2: 0-3, 4-7)
    samples[6].set_metainfo(dict(text=samples[1].text))
    samples[2].set_gt_label(3)
    samples[7].set_gt_label(3)
    cfg = _aware(tiny_model_cfg)
    ref_model = _model(cfg)
    ref = _capture(ref_model)
    ref_log = ref_model.train_step(copy.deepcopy(data), ref)
    plain = _model(tiny_model_cfg)
    plain.load_state_dict(ref_model.state_dict())
    plain_log = plain.train_step(copy.deepcopy(data), _capture(plain))
    assert abs(plain_log['loss'].item() - ref_log['loss'].item()) > 1e-3  # the keys reached the loss

    model = _model(cfg, accum_freq=2)
    model.load_state_dict(ref_model.state_dict())
    got = _capture(model)
    log = model.train_step(copy.deepcopy(data), got)
    assert log['loss'].item() == pytest.approx(ref_log['loss'].item(), abs=1e-6)
    for name, grad in ref.grads.items():
        torch.testing.assert_close(got.grads[name], grad, atol=1e-5, rtol=0, msg=name)
