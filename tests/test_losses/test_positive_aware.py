"""False-negative-aware ContrastiveLoss: hand-checked targets and sample keys (DDP: test_ddp_equivalence.py)."""

import pytest
import torch
import torch.nn.functional as F

from cnclip_mm.models.losses import ContrastiveLoss, positive_keys
from cnclip_mm.structures import DataSample
from tests.test_losses.test_contrastive import _direct

# Five pairs: images 0 and 1 are the same image; captions 1 and 2 are the same text; samples 0 and
# 3 share class 7 (4 has no label). Expected positives of each row, written out by hand:
IMAGE_IDS = [10, '10', 11, 12, 13]
TEXTS = ['红色的圆', '蓝色的方块', '蓝色的方块', '一只猫', '一只狗']
LABELS = [7, 8, 9, 7, None]
HAND_POSITIVES = {
    ('image_id',): [{0, 1}, {0, 1}, {2}, {3}, {4}],
    ('text',): [{0}, {1, 2}, {1, 2}, {3}, {4}],
    ('label',): [{0, 3}, {1}, {2}, {0, 3}, {4}],
    ('image_id', 'text', 'label'): [{0, 1, 3}, {0, 1, 2}, {1, 2}, {0, 3}, {4}],
}


def _samples():
    out = []
    for image_id, text, label in zip(IMAGE_IDS, TEXTS, LABELS):
        sample = DataSample(metainfo=dict(image_id=image_id, text=text))
        if label is not None:
            sample.set_gt_label(label)
        out.append(sample)
    return out


def _feats(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(n, 6, generator=g, dtype=torch.float64), dim=-1),
            F.normalize(torch.randn(n, 6, generator=g, dtype=torch.float64), dim=-1))


@pytest.mark.parametrize('criteria', list(HAND_POSITIVES))
@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_matches_hand_computed_targets(criteria, smoothing):
    img, txt = _feats()
    loss_fn = ContrastiveLoss(positives=criteria, label_smoothing=smoothing)
    inputs = dict(images=torch.zeros(5, 3, 2, 2), image_slots=list(range(5)))
    extra = loss_fn.batch_context(inputs, _samples())
    got = loss_fn(img, txt, torch.tensor(2.0, dtype=torch.float64), **extra)
    want = _direct(img, txt, 2.0, smoothing, HAND_POSITIVES[criteria])
    assert got.item() == pytest.approx(want, abs=1e-10)
    # The plain loss on the same batch is the diagonal-only target, i.e. a different number.
    plain = ContrastiveLoss(label_smoothing=smoothing)(img, txt, torch.tensor(2.0, dtype=torch.float64))
    assert plain.item() == pytest.approx(_direct(img, txt, 2.0, smoothing, [{i} for i in range(5)]))
    assert abs(plain.item() - got.item()) > 1e-3


def test_keys_and_bad_options():
    keys = positive_keys(_samples(), ('image_id', 'text', 'label'))
    assert keys.shape == (5, 3) and keys.dtype == torch.int64
    assert keys[0, 0] == keys[1, 0] == 10            # '10' and 10 are one image
    assert keys[1, 1] == keys[2, 1] != keys[0, 1]    # same caption, same stable hash
    assert keys[4, 2] == torch.iinfo(torch.int64).min  # no label: matches nothing by label
    with pytest.raises(ValueError, match='unknown positives'):
        ContrastiveLoss(positives=('caption',))
    with pytest.raises(ValueError, match='needs the data samples'):
        ContrastiveLoss(positives=('text',)).batch_context(
            dict(images=torch.zeros(5, 3, 2, 2), image_slots=list(range(5))), None)
    assert ContrastiveLoss().batch_context({}, None) == {}


def test_identical_captions_give_the_plain_loss_and_gradients():
    """Exact duplicate captions: the rows of identical texts have identical softmaxes, so the plain
    loss already equals the aware one, value and gradients (why benchmarks/finetune_duplicates.py
    uses random templates). Distinct captions of one class are where the two differ."""
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 2, 0])
    images, class_texts = torch.randn(8, 16), torch.randn(3, 16)
    results = {}
    for name, positives in (('plain', ()), ('aware', ('text',))):
        img, cls = images.clone().requires_grad_(), class_texts.clone().requires_grad_()
        txt = F.normalize(cls[labels], dim=-1)
        keys = labels[:, None] if positives else None
        loss = ContrastiveLoss(positives=positives)(F.normalize(img, dim=-1), txt, torch.tensor(2.0), keys)
        loss.backward()
        results[name] = (loss.detach(), img.grad, cls.grad)
    for plain, aware in zip(results['plain'], results['aware']):
        torch.testing.assert_close(plain, aware, rtol=0, atol=1e-6)
    # One caption per class made distinct (a template per sample): now the objectives differ.
    distinct = F.normalize(class_texts[labels] + 0.3 * torch.randn(8, 16), dim=-1)
    img = F.normalize(images, dim=-1)
    plain = ContrastiveLoss()(img, distinct, torch.tensor(2.0))
    aware = ContrastiveLoss(positives=('label',))(img, distinct, torch.tensor(2.0), labels[:, None])
    assert abs(plain.item() - aware.item()) > 1e-2
