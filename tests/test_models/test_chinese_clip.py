"""ChineseCLIP: modes, normalised features, zero-shot embeddings, locking, logit-scale clamp."""
import math

import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.models.data_preprocessor import CLIP_MEAN, CLIP_STD, batch_inputs
from cnclip_mm.registry import MODELS
from cnclip_mm.structures import DataSample


@pytest.fixture
def model(tiny_model_cfg):
    torch.manual_seed(0)
    return MODELS.build(tiny_model_cfg).eval()


def paired_batch(model, texts):
    images = torch.randint(0, 256, (len(texts), 3, 32, 32), dtype=torch.uint8)
    ids = model.tokenizer(texts)
    samples = []
    for row in ids:
        sample = DataSample()
        sample.text_ids = row
        samples.append(sample)
    return images, ids, model.data_preprocessor(dict(inputs=list(images), data_samples=samples), True)


def test_preprocessor_normalises_and_slots(model):
    images, ids, data = paired_batch(model, ['红色圆形', '蓝色方形'])
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(data['inputs']['images'], (images.float() / 255 - mean) / std, atol=1e-5)
    assert torch.equal(data['inputs']['text_ids'], ids)
    assert data['inputs']['image_slots'] == [0, 1] == data['inputs']['text_slots']


def test_features_are_normalised_and_text_accepts_strings(model):
    images, ids, data = paired_batch(model, ['红色圆形', '蓝色方形'])
    image_feats, text_feats = model(**data, mode='tensor')
    assert image_feats.shape == (2, 32) and text_feats.shape == (2, 32)
    assert torch.allclose(image_feats.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(model.extract_text_feat(['红色圆形', '蓝色方形']), text_feats, atol=1e-6)
    expect = F.normalize(model.text_encoder(ids) @ model.text_projection, dim=-1)
    assert torch.allclose(text_feats, expect, atol=1e-6)


def test_loss_mode(model):
    _, _, data = paired_batch(model, ['红色圆形', '蓝色方形', '绿色三角形'])
    out = model(**data, mode='loss')
    image_feats, text_feats = model(**data, mode='tensor')
    logits = math.exp(model.logit_scale.item()) * image_feats @ text_feats.t()
    labels = torch.arange(3)
    expect = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    assert torch.allclose(out['loss'], expect, atol=1e-5)
    assert torch.allclose(out['logit_scale'], torch.tensor(1 / 0.07), atol=1e-3)


def test_loss_backward_finishes_the_image_tower_before_the_text_tower(model):
    """The text tower's gradients are made last, in the memory the image tower's backward freed."""
    _, _, data = paired_batch(model, ['红色圆形', '蓝色方形', '绿色三角形'])
    order = []
    towers = dict(image=model.image_encoder, text=model.text_encoder)
    for name, tower in towers.items():
        for param in tower.parameters():
            param.register_post_accumulate_grad_hook(lambda _, name=name: order.append(name))
    model.train()
    model(**data, mode='loss')['loss'].backward()
    counts = {name: sum(1 for p in tower.parameters() if p.grad is not None)
              for name, tower in towers.items()}
    assert counts['image'] > 0 and counts['text'] > 0
    assert order == ['image'] * counts['image'] + ['text'] * counts['text']


def test_encoding_order_leaves_loss_and_gradients_unchanged(model):
    """Training mode, text dropout on: encoding the images first gives the same numbers."""
    _, _, data = paired_batch(model, ['红色圆形', '蓝色方形', '绿色三角形'])
    model.train()
    inputs = data['inputs']

    def loss_and_grads(image_first: bool):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(3)
        if image_first:
            image_feats = model.extract_image_feat(inputs['images'])
            text_feats = model.extract_text_feat(inputs['text_ids'])
            loss = model.loss_module(image_feats, text_feats, model.logit_scale)
        else:
            loss = model(**data, mode='loss')['loss']
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss, grads = loss_and_grads(False)
    ref_loss, ref_grads = loss_and_grads(True)
    assert torch.equal(loss, ref_loss) and len(grads) == len(ref_grads) > 0
    assert all(torch.equal(g, r) for g, r in zip(grads, ref_grads))


def test_predict_mixed_image_and_text_items(model):
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    text_sample = DataSample(metainfo=dict(text_id=7, gt_image_ids=[1]))
    text_sample.text_ids = model.tokenizer('红色圆形')[0]
    samples = [DataSample(metainfo=dict(image_id=1)), text_sample]
    data = model.data_preprocessor(dict(inputs=[image, None], data_samples=samples), False)
    assert data['inputs']['image_slots'] == [0] and data['inputs']['text_slots'] == [1]
    out = model(**data, mode='predict')
    assert 'text_feat' not in out[0] and 'image_feat' not in out[1]
    assert torch.allclose(out[0].image_feat, model.extract_image_feat(data['inputs']['images'])[0], atol=1e-6)
    assert torch.allclose(out[1].text_feat, model.extract_text_feat(['红色圆形'])[0], atol=1e-6)
    with pytest.raises(ValueError, match='both an image and text_ids'):
        model(**data, mode='loss')
    with pytest.raises(ValueError, match='mode'):
        model(**data, mode='nonsense')


def test_zeroshot_class_embeddings(model):
    classes, templates = ['猫', '狗', '飞机'], ['一张{}的照片。', '{}的图片']
    emb = model.set_zeroshot_classes(classes, templates)
    manual = []
    for name in classes:
        feats = model.extract_text_feat([t.format(name) for t in templates])
        manual.append(F.normalize(feats.mean(0), dim=-1))
    assert torch.allclose(emb, torch.stack(manual), atol=1e-6)
    images = torch.randn(2, 3, 32, 32)
    out = model(inputs=batch_inputs(images=images), mode='predict')
    logits = 100 * model.extract_image_feat(images) @ emb.t()
    assert torch.allclose(out[0].pred_score, logits.softmax(-1)[0], atol=1e-6)
    assert out[1].pred_label.item() == logits[1].argmax().item()
    model.clear_zeroshot_classes()
    assert 'pred_score' not in model(inputs=batch_inputs(images=images), mode='predict')[0]
    with pytest.raises(ValueError, match='at least one'):
        model.set_zeroshot_classes([], templates)


def test_locking_is_idempotent_and_reversible(model):
    model.lock_image_tower()
    model.lock_image_tower()
    assert model.image_tower_locked and not any(p.requires_grad for p in model.image_encoder.parameters())
    assert model.text_projection.requires_grad and model.logit_scale.requires_grad
    model.unlock_image_tower()
    assert not model.image_tower_locked
    model.lock_text_tower(unlocked_layers=1)
    names = {n for n, p in model.text_encoder.named_parameters() if not p.requires_grad}
    assert any(n.startswith('bert.embeddings') for n in names)
    assert not any('encoder.layer.1.' in n for n in names) and any('encoder.layer.0.' in n for n in names)
    model.unlock_text_tower()
    assert not model.text_tower_locked


def test_clamp_logit_scale(model):
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    with torch.no_grad():
        model.logit_scale.fill_(-1.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 0.0


def test_rn50_tiny_model_and_errors(tiny_model_cfg):
    cfg = dict(tiny_model_cfg, image_encoder=dict(type='ModifiedResNet', arch=dict(layers=(1, 1, 1, 1), width=8),
                                                  img_size=64))
    model = MODELS.build(cfg)
    assert model.extract_image_feat(torch.randn(2, 3, 64, 64)).shape == (2, 32)
    model.lock_image_tower()
    model.train()
    assert not model.image_encoder.bn1.training and model.text_encoder.training
    bad = dict(tiny_model_cfg, image_encoder=dict(tiny_model_cfg['image_encoder'], output_dim=8))
    with pytest.raises(ValueError, match='output_dim'):
        MODELS.build(bad)
    no_tok = MODELS.build(dict(tiny_model_cfg, tokenizer=None))
    with pytest.raises(RuntimeError, match='no tokenizer'):
        no_tok.extract_text_feat(['猫'])


def test_text_encoder_masks_padding(model):
    ids = model.tokenizer(['红色圆形'], context_length=12)
    longer = model.tokenizer(['红色圆形'], context_length=20)
    enc = model.text_encoder
    assert torch.allclose(enc(ids), enc(longer), atol=1e-5)  # padding never leaks into [CLS]


def test_text_features_equal_the_transformers_bert_path(model):
    """The own text tower gives what transformers' BertModel (the previous tower) gives with the same weights."""
    from transformers import BertConfig, BertModel
    config = model.text_encoder.config
    hf = BertModel(BertConfig(**config.to_dict()), add_pooling_layer=False).eval()
    hf.load_state_dict(model.text_encoder.bert.state_dict(), strict=True)
    ids = model.tokenizer(['红色圆形', '一张在夜晚拍摄的城市街道照片', '狗'])
    with torch.no_grad():
        cls = hf(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]
        expect = F.normalize(cls @ model.text_projection, dim=-1)
        torch.testing.assert_close(model.extract_text_feat(ids), expect, atol=1e-5, rtol=0)
        torch.testing.assert_close(model.extract_text_feat(['红色圆形', '一张在夜晚拍摄的城市街道照片', '狗']), expect,
                                   atol=1e-5, rtol=0)
