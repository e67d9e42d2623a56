"""The tiny ChineseCLIP trains and extracts on every device present (``device`` fixture: cpu, and cuda when
there is one), and a full train step runs on the ``meta`` device, which has no data: any read of a tensor's
value on the host (``.item()``, ``nonzero``, ``int(t)``, a data-dependent branch) or any CPU assumption stops it.
"""
import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.registry import MODELS
from tests.test_models.tiny_batches import pair_batch

LENGTHS = (5, 12, 9, 20)  # caption tokens; the collate trims the ids to 24 columns


@pytest.fixture(autouse=True)
def _full_fp32():
    """No TF32 on CUDA (cuDNN convolutions use it by default): the tests compare float32 results."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _model(cfg: dict, device: str):
    torch.manual_seed(0)
    return MODELS.build(cfg).to(device)


def _adamw(model) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)


def test_train_step_on_every_device(tiny_model_cfg, device):
    model = _model(tiny_model_cfg, device).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = _adamw(model)
    batch = model.data_preprocessor(pair_batch(LENGTHS), training=True)
    assert batch['inputs']['images'].device.type == device
    assert batch['inputs']['text_ids'].device.type == device
    assert batch['inputs']['text_ids'].shape == (len(LENGTHS), 24)
    loss = model(**batch, mode='loss')['loss']
    assert loss.device.type == device and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f'{name} got no gradient'
        assert param.grad.device.type == device and torch.isfinite(param.grad).all(), name
    optimizer.step()
    moved = [name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert len(moved) == len(before), sorted(set(before) - set(moved))


def _loss_and_grads(model, batch: dict, dtype: torch.dtype):
    """Loss and parameter gradients without dropout (eval mode), images cast to ``dtype``."""
    model.eval().zero_grad(set_to_none=True)
    inputs = dict(batch['inputs'], images=batch['inputs']['images'].to(dtype))
    loss = model(inputs, mode='loss')['loss']
    loss.backward()
    return loss.detach(), {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def test_loss_and_gradients_on_every_device_match_the_cpu_in_float64(tiny_model_cfg, device):
    """The step computes the right numbers on the device: a float64 CPU run of the same weights agrees."""
    model = _model(tiny_model_cfg, device)
    loss, grads = _loss_and_grads(model, model.data_preprocessor(pair_batch(LENGTHS)), torch.float32)
    reference = model.to('cpu', torch.float64)
    want_loss, want_grads = _loss_and_grads(
        reference, reference.data_preprocessor(pair_batch(LENGTHS)), torch.float64)
    torch.testing.assert_close(loss.cpu().double(), want_loss, atol=1e-5, rtol=1e-4)
    # Gradients that are zero in exact arithmetic (a key bias under softmax) are float32 noise: an absolute
    # tolerance relative to the largest gradient of the model.
    atol = 1e-5 * max(g.abs().max().item() for g in want_grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(grad.cpu().double(), want_grads[name], atol=atol, rtol=1e-3,
                                   msg=lambda m, name=name: f'{name}: {m}')


def test_bf16_autocast_train_step_on_every_device(tiny_model_cfg, device):
    model = _model(tiny_model_cfg, device).train()
    optimizer = _adamw(model)
    batch = model.data_preprocessor(pair_batch(LENGTHS), training=True)
    with torch.autocast(device, dtype=torch.bfloat16):
        image_feats, text_feats = model(batch['inputs'], mode='tensor')
        loss = model(**batch, mode='loss')['loss']
    assert image_feats.dtype == text_feats.dtype == _autocast_feature_dtype(device)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()


def _autocast_feature_dtype(device: str) -> torch.dtype:
    """Features are L2-normalised last; CUDA's autocast runs ``norm`` in float32 (CPU's keeps bfloat16)."""
    return torch.float32 if device == 'cuda' else torch.bfloat16


def _features(model, lengths=LENGTHS, seed=0):
    batch = model.data_preprocessor(pair_batch(lengths, seed=seed))
    with torch.inference_mode():
        return model(batch['inputs'], mode='tensor')


def test_inference_features_on_every_device(tiny_model_cfg, device):
    model = _model(tiny_model_cfg, device).eval()
    image_feats, text_feats = _features(model)
    for feats in (image_feats, text_feats):
        assert feats.shape == (len(LENGTHS), 32) and feats.device.type == device
        torch.testing.assert_close(feats.norm(dim=-1), torch.ones(len(LENGTHS), device=device))
    # One caption alone (trimmed to 8 columns, not 24) gets the feature it had in the batch: the padding
    # mask works on the device.
    alone = _features(model, LENGTHS[:1])[1]
    torch.testing.assert_close(alone[0], text_feats[0], atol=2e-5, rtol=1e-4)
    if device != 'cpu':  # the same weights give the CPU's features
        reference = _features(model.to('cpu'))
        for got, want in zip((image_feats, text_feats), reference):
            torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-3)


def test_bf16_autocast_inference_on_every_device(tiny_model_cfg, device):
    model = _model(tiny_model_cfg, device).eval()
    full = _features(model)
    with torch.autocast(device, dtype=torch.bfloat16):
        half = _features(model)
    for got, want in zip(half, full):
        assert got.dtype == _autocast_feature_dtype(device)
        assert not torch.equal(got.float(), want)  # the products ran in bfloat16
        assert F.cosine_similarity(got.float(), want, dim=-1).min() > 0.99


def test_predict_writes_features_on_every_device(tiny_model_cfg, device):
    model = _model(tiny_model_cfg, device).eval()
    batch = model.data_preprocessor(pair_batch(LENGTHS))
    with torch.inference_mode():
        samples = model(**batch, mode='predict')
    assert len(samples) == len(LENGTHS)
    assert all(s.image_feat.device.type == device and s.text_feat.shape == (32,) for s in samples)


@pytest.mark.parametrize('grad_checkpointing, positives',
                         [(False, ()), (True, ()), (False, ('image_id', 'text', 'label'))],
                         ids=['plain', 'checkpointing', 'aware-loss'])
def test_a_full_train_step_runs_on_the_meta_device(tiny_model_cfg, grad_checkpointing, positives):
    """Both towers, the project's ContrastiveLoss (also false-negative-aware, keys from the samples'
    metainfo), backward and AdamW on tensors without data."""
    tiny_model_cfg['loss'] = dict(type='ContrastiveLoss', positives=positives)
    model = MODELS.build(tiny_model_cfg).to('meta').train()
    model.set_grad_checkpointing(grad_checkpointing)
    optimizer = _adamw(model)
    data = pair_batch(LENGTHS)
    for i, sample in enumerate(data['data_samples']):
        sample.set_metainfo(dict(image_id=i // 2, text=f'caption {i % 3}'))
        sample.set_gt_label(i % 2)  # moved to the meta device with the batch; the loss reads label_index
    batch = model.data_preprocessor(data, training=True)
    assert batch['inputs']['images'].is_meta and batch['inputs']['text_ids'].is_meta
    losses = model(**batch, mode='loss')
    assert losses['loss'].is_meta and losses['loss'].shape == ()
    losses['loss'].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.is_meta and param.grad.shape == param.shape, name
    optimizer.step()
    states = [optimizer.state[p] for p in model.parameters()]
    assert all(state['exp_avg'].is_meta for state in states)
