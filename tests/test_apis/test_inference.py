"""Zero-shot classification (the inferencer) and the encode helpers on a tiny model."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnclip_mm.apis import ZeroShotClassificationInferencer, encode_images, encode_texts
from cnclip_mm.registry import MODELS

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tests' / 'test_evaluation'))
from eval_fixtures import tiny_test_config, write_cifar100  # noqa: E402

CLASSES = ['猫', '狗', '汽车']
TEMPLATES = ['一张{}的照片', '{}']


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, size=(40 + 5 * i, 48, 3), dtype=np.uint8) for i in range(3)]
    path = tmp_path / 'a.png'
    Image.fromarray(arrays[0]).save(path)
    return [str(path), Image.fromarray(arrays[1]), arrays[2]], arrays


def _direct_probs(model, arrays):
    size = model.image_encoder.img_size
    pixels = torch.stack([torch.from_numpy(np.array(Image.fromarray(a).resize((size, size), Image.BICUBIC)))
                          for a in arrays]).permute(0, 3, 1, 2)
    with torch.no_grad():
        img = model.extract_image_feat(model.data_preprocessor.normalize(pixels))
        cls = torch.stack([F.normalize(model.extract_text_feat([t.format(c) for t in TEMPLATES]), dim=-1).mean(0)
                           for c in CLASSES])
    scale = model.logit_scale.detach().exp().clamp(max=100)  # the model's own (100 for released weights)
    return (scale * img @ F.normalize(cls, dim=-1).T).softmax(-1)


def test_classifier_on_paths_pil_arrays(tiny_model_cfg, images):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg).eval()
    inputs, arrays = images
    clf = ZeroShotClassificationInferencer(model, classes=CLASSES, templates=TEMPLATES, topk=2)
    out = clf(inputs)
    expected = _direct_probs(model, arrays)
    assert torch.allclose(torch.tensor(np.stack([o['pred_scores'] for o in out])), expected, atol=1e-5)
    for o, row in zip(out, expected):
        assert o['pred_label'] == int(row.argmax()) and o['pred_class'] == CLASSES[o['pred_label']]
        assert len(o['topk_labels']) == 2 and o['pred_score'] == pytest.approx(float(row.max()), abs=1e-5)
    assert model.class_embeddings is None  # the inferencer keeps its own class embeddings


def test_encode_helpers_match_model(tiny_model_cfg, images):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg).eval()
    inputs, arrays = images
    feats = encode_images(model, inputs, batch_size=2)
    assert feats.shape == (3, model.embed_dim)
    assert torch.allclose(feats.norm(dim=1), torch.ones(3), atol=1e-5)
    single = encode_images(model, arrays[2])
    assert torch.allclose(single[0], feats[2], atol=1e-5)
    texts = encode_texts(model, ['一只猫', '一辆车', '海边'], batch_size=2)
    with torch.no_grad():
        assert torch.allclose(texts, model.extract_text_feat(['一只猫', '一辆车', '海边']), atol=1e-5)
    with pytest.raises(TypeError, match='unsupported image type'):
        encode_images(model, [42])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        encode_images(model, ['/nonexistent.jpg'])


def test_classifier_from_config_and_checkpoint(tmp_path, vocab_file, images):
    write_cifar100(str(tmp_path / 'c'), [0])
    cfg = tiny_test_config(tmp_path, 'zeroshot_cifar100.py', str(tmp_path / 'c'), vocab_file, retrieval=False)
    from mmengine.config import Config
    torch.manual_seed(3)
    model = MODELS.build(Config.fromfile(cfg).model).eval()
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    inputs, arrays = images
    clf = ZeroShotClassificationInferencer(cfg, pretrained=str(ckpt), classes=CLASSES, templates=TEMPLATES,
                                           cpu_speed=False)
    probs = torch.tensor(np.stack([o['pred_scores'] for o in clf(inputs)]))
    assert torch.allclose(probs, _direct_probs(model, arrays), atol=1e-5)
    with pytest.raises(ValueError, match='non-empty list of classes'):
        ZeroShotClassificationInferencer(model, classes=[])
