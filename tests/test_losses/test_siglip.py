"""SigLipLoss: the loss and its gradients written out by hand, config selection and the checkpoint key.

2-process gloo (ring and all-gather exchange) equal to one process on the global batch: test_ddp_equivalence.py
(one spawn for every loss), with :class:`SigLipModel`."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnclip_mm.models.losses import SigLipLoss, total_loss
from cnclip_mm.models.losses.siglip import sigmoid_block_loss
from cnclip_mm.registry import MODELS


def _hand(img, txt, t_prime, b):
    """Loss and gradients (images, texts, t', b) from the formulas, in Python floats:
    L = -(1/n) sum_ij log sigmoid(z_ij l_ij), l_ij = t x_i.y_j + b, t = exp(t'), z = +1 on i = j else -1;
    dL/dl_ij = -(1/n) z_ij sigmoid(-z_ij l_ij) =: g_ij; dL/dx_i = t sum_j g_ij y_j; dL/dy_j = t sum_i g_ij x_i;
    dL/dt' = t sum_ij g_ij x_i.y_j; dL/db = sum_ij g_ij."""
    x, y = img.tolist(), txt.tolist()
    n, d, t = len(x), len(x[0]), math.exp(t_prime)
    loss, gx, gy, gt, gb = 0.0, [[0.0] * d for _ in x], [[0.0] * d for _ in y], 0.0, 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            dot = sum(a * c for a, c in zip(x[i], y[j]))
            logit = t * dot + b
            loss -= math.log(1 / (1 + math.exp(-z * logit))) / n
            g = -z / (1 + math.exp(z * logit)) / n
            for k in range(d):
                gx[i][k] += t * g * y[j][k]
                gy[j][k] += t * g * x[i][k]
            gt += t * g * dot
            gb += g
    return loss, torch.tensor(gx, dtype=torch.float64), torch.tensor(gy, dtype=torch.float64), gt, gb


@pytest.mark.parametrize('t_prime,b', [(math.log(10), -10.0), (1.3, 0.75)])
def test_loss_and_gradients_match_the_formula(t_prime, b):
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(4, 3, generator=g, dtype=torch.float64), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(4, 3, generator=g, dtype=torch.float64), dim=-1).requires_grad_()
    loss_fn = MODELS.build(dict(type='SigLipLoss', init_logit_bias=b)).double()
    logit_scale = torch.tensor(t_prime, dtype=torch.float64, requires_grad=True)
    out = loss_fn(img, txt, logit_scale)
    out['loss'].backward()
    loss, gx, gy, gt, gb = _hand(img.detach(), txt.detach(), t_prime, b)
    assert out['loss'].item() == pytest.approx(loss, abs=1e-6) and out['logit_bias'].item() == b
    torch.testing.assert_close(img.grad, gx, atol=1e-6, rtol=0)
    torch.testing.assert_close(txt.grad, gy, atol=1e-6, rtol=0)
    assert logit_scale.grad.item() == pytest.approx(gt, abs=1e-6)
    assert loss_fn.logit_bias.grad.item() == pytest.approx(gb, abs=1e-6)


def test_blocks_sum_to_the_direct_computation():
    """What each rank of the ring computes (own texts with the positives on the diagonal, then every other
    rank's block as all negatives) sums to rank r's rows of the full global matrix (positives at r * n)."""
    g = torch.Generator().manual_seed(2)
    img = F.normalize(torch.randn(12, 5, generator=g, dtype=torch.float64), dim=-1)
    txt = F.normalize(torch.randn(12, 5, generator=g, dtype=torch.float64), dim=-1)
    scale, bias = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-10.0, dtype=torch.float64)
    world, n = 3, 4
    for rank in range(world):
        rows = img[rank * n:(rank + 1) * n]
        direct = sigmoid_block_loss(rows, txt, scale, bias, rank * n)
        blocks = sum(sigmoid_block_loss(rows, txt[r * n:(r + 1) * n], scale, bias, 0 if r == rank else None)
                     for r in range(world))
        assert blocks.item() == pytest.approx(direct.item(), abs=1e-6)


def test_official_init_bias_follows_temperature_and_bad_input():
    loss_fn = SigLipLoss()
    assert loss_fn.logit_bias.item() == -10.0 and loss_fn.max_logit_scale == 100.0
    x, y = F.normalize(torch.randn(3, 4), dim=-1), F.normalize(torch.randn(3, 4), dim=-1)
    # A temperature without gradient (feature-cache passes that must not count it) holds the bias too.
    assert not loss_fn(x, y, torch.tensor(math.log(10)))['loss'].requires_grad
    assert loss_fn(x, y, torch.tensor(math.log(10), requires_grad=True))['loss'].requires_grad
    with pytest.raises(ValueError, match='both image_feats and text_feats'):
        loss_fn(x, None, torch.tensor(1.0))
    with pytest.raises(ValueError, match=r'\[N, D\]'):
        loss_fn(x, y[:2], torch.tensor(1.0))
    with pytest.raises(ValueError, match='exchange'):
        SigLipLoss(exchange='gather')


def test_model_selects_it_from_config_and_checkpoint_holds_the_bias(tiny_model_cfg):
    cfg = dict(tiny_model_cfg, init_logit_scale=math.log(10), loss=dict(type='SigLipLoss'))
    model = MODELS.build(cfg)
    assert isinstance(model.loss_module, SigLipLoss) and model.logit_scale.item() == pytest.approx(math.log(10))
    state = model.state_dict()
    assert state['loss_module.logit_bias'].item() == -10.0
    state['loss_module.logit_bias'] = torch.tensor(-7.5)
    rebuilt = MODELS.build(cfg)
    rebuilt.load_state_dict(state, strict=True)
    assert rebuilt.loss_module.logit_bias.item() == -7.5


class SigLipModel(nn.Module):
    """Two float64 linear towers and the loss (its bias is a model parameter, as in ChineseCLIP)."""

    def __init__(self, exchange: str):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.img, self.txt = nn.Linear(6, 5), nn.Linear(7, 5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10)))
        self.loss = SigLipLoss(init_logit_bias=-2.0, exchange=exchange)
        self.double()
        for p in (self.img.weight, self.img.bias, self.txt.weight, self.txt.bias):
            p.data = torch.randn(p.shape, generator=g, dtype=torch.float64)

    def forward(self, x, t):
        img, txt = F.normalize(self.img(x), dim=-1), F.normalize(self.txt(t), dim=-1)
        return total_loss(self.loss(img, txt, self.logit_scale))


def test_leaf_config_and_exports_without_the_bias(tiny_model_cfg):
    """configs/siglip selects the loss; the official and HF exports of a SigLIP model hold the same keys as a
    softmax model's (the bias has no counterpart there and is left out)."""
    from mmengine.config import Config

    from cnclip_mm.models.converters import mm_to_hf, mm_to_official
    cfg = Config.fromfile(str(Path(__file__).resolve().parents[2] / 'configs/siglip/stage2_vit-b-16_siglip.py'))
    assert cfg.model.loss == dict(type='SigLipLoss', init_logit_bias=-10.0, exchange='ring')
    assert cfg.model.init_logit_scale == pytest.approx(math.log(10))
    siglip = MODELS.build(dict(tiny_model_cfg, loss=cfg.model.loss)).state_dict()
    softmax = MODELS.build(tiny_model_cfg).state_dict()
    assert set(siglip) - set(softmax) == {'loss_module.logit_bias'}
    assert mm_to_official(siglip).keys() == mm_to_official(softmax).keys()
    assert mm_to_hf(siglip).keys() == mm_to_hf(softmax).keys()


def test_softmax_weights_load_into_a_siglip_model_and_back(tiny_model_cfg):
    """Official / softmax-trained weights (no bias) load strictly into a SigLIP model, whose bias keeps its
    start value; a SigLIP checkpoint loads strictly into a softmax model (the bias is left out)."""
    from cnclip_mm.models.converters import load_state_dict_into, mm_to_official, official_to_mm
    softmax = MODELS.build(tiny_model_cfg)
    siglip = MODELS.build(dict(tiny_model_cfg, loss=dict(type='SigLipLoss')))
    load_state_dict_into(siglip, official_to_mm(mm_to_official(softmax.state_dict())), strict=True)
    assert siglip.loss_module.logit_bias.item() == -10.0
    assert torch.equal(siglip.text_projection, softmax.text_projection)
    siglip.loss_module.logit_bias.data.fill_(-3.0)
    load_state_dict_into(MODELS.build(tiny_model_cfg), siglip.state_dict(), strict=True)
