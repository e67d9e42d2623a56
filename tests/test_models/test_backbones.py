"""Image towers: official key names, presets' parameter counts, shapes, resolution change, locking."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from cnclip_mm.models.backbones import CLIPVisionTransformer, ModifiedResNet
from cnclip_mm.models.backbones.utils import resize_pos_embed
from cnclip_mm.registry import MODELS

# Total parameters (M) of each variant per REFERENCE.md.
PARAMS_M = {'rn50': 77, 'vit-b-16': 188, 'vit-l-14': 406, 'vit-l-14-336': 407, 'vit-h-14': 958}


def tiny_vit(**kwargs):
    return CLIPVisionTransformer(arch=dict(width=32, layers=2, heads=2, patch_size=8), img_size=32,
                                 output_dim=16, **kwargs)


def tiny_rn(**kwargs):
    return ModifiedResNet(arch=dict(layers=(1, 1, 1, 1), width=8), img_size=64, output_dim=16, **kwargs)


@pytest.mark.parametrize('variant', sorted(PARAMS_M))
def test_preset_parameter_counts(variant):
    cfg = Config.fromfile(f'configs/_base_/models/{variant}.py')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    total = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(total - PARAMS_M[variant]) / PARAMS_M[variant] < 0.01, total


def test_vit_presets():
    assert CLIPVisionTransformer.arch_zoo['h-14']['width'] // CLIPVisionTransformer.arch_zoo['h-14']['heads'] == 80
    with torch.device('meta'):
        vit = CLIPVisionTransformer('l-14-336')
    assert vit.positional_embedding.shape == (24 * 24 + 1, 1024) and vit.proj.shape == (1024, 768)


def test_vit_official_keys_and_forward():
    vit = tiny_vit()
    keys = set(vit.state_dict())
    for key in ('conv1.weight', 'class_embedding', 'positional_embedding', 'ln_pre.weight', 'ln_post.bias',
                'proj', 'transformer.resblocks.1.attn.in_proj_weight', 'transformer.resblocks.1.attn.in_proj_bias',
                'transformer.resblocks.0.attn.out_proj.weight', 'transformer.resblocks.0.ln_1.weight',
                'transformer.resblocks.0.ln_2.bias', 'transformer.resblocks.0.mlp.c_fc.weight',
                'transformer.resblocks.0.mlp.c_proj.bias'):
        assert key in keys, key
    assert 'conv1.bias' not in keys
    assert vit(torch.randn(3, 3, 32, 32)).shape == (3, 16)


def test_vit_attention_matches_torch_mha():
    vit = tiny_vit().train()
    attn = vit.transformer.resblocks[0].attn
    mha = torch.nn.MultiheadAttention(32, 2, batch_first=True)
    mha.in_proj_weight.data.copy_(attn.in_proj_weight)
    mha.in_proj_bias.data.copy_(attn.in_proj_bias)
    mha.out_proj.load_state_dict(attn.out_proj.state_dict())
    x = torch.randn(2, 17, 32)
    grad = torch.randn(2, 17, 32)
    results = []
    for fn, owner in ((attn, attn), (lambda t: mha(t, t, t, need_weights=False)[0], mha)):
        xi = x.clone().requires_grad_()
        out = fn(xi)
        out.backward(grad)
        results.append((out.detach(), xi.grad, owner.in_proj_weight.grad, owner.in_proj_bias.grad))
    for ours, ref in zip(*results):  # output, then gradients of the input and of the packed q/k/v projection
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # the last block's class-token-only path: the first query's row of the same attention
        torch.testing.assert_close(attn(x, queries=1), results[1][0][:, :1], atol=1e-5, rtol=1e-5)


def _official_tower(vit, images):
    """The official computation from the same modules: every token through every block (attention as
    ``nn.MultiheadAttention`` computes it, the MLP written out), then the class token read out."""
    x = vit.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([vit.class_embedding.expand(len(x), 1, -1), x], dim=1)
    x = vit.ln_pre(x + vit.positional_embedding).transpose(0, 1)  # [L, N, C], MHA's layout
    for block in vit.transformer.resblocks:
        h = block.ln_1(x)
        attn = block.attn
        x = x + F.multi_head_attention_forward(
            h, h, h, vit.width, vit.heads, attn.in_proj_weight, attn.in_proj_bias, None, None, False, 0.0,
            attn.out_proj.weight, attn.out_proj.bias, need_weights=False)[0]
        h = block.mlp.c_fc(block.ln_2(x))
        x = x + block.mlp.c_proj(h * torch.sigmoid(1.702 * h))
    return vit.ln_post(x[0]) @ vit.proj


@pytest.mark.parametrize('checkpointing', [False, True])
def test_vit_class_token_only_last_block_equals_the_official_computation(checkpointing):
    """The last block computes only the class token; features and every gradient are the full computation's."""
    torch.manual_seed(0)
    vit = CLIPVisionTransformer(arch=dict(width=64, layers=3, heads=4, patch_size=8), img_size=32,
                                output_dim=16, grad_checkpointing=checkpointing).double().train()
    images = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    ours, ref = vit(images), _official_tower(vit, images)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)
    params = [p for _, p in vit.named_parameters()]
    grads = [torch.autograd.grad(out.square().sum(), params) for out in (ours, ref)]
    for name, got, want in zip([n for n, _ in vit.named_parameters()], *grads):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10, msg=name)
    vit.float()
    with torch.no_grad():
        torch.testing.assert_close(vit(images.float()), _official_tower(vit, images.float()), atol=1e-5, rtol=1e-5)


def test_vit_openai_init():
    """OpenAI CLIP's initialisation: attention / projection / MLP standard deviations, zero out_proj bias."""
    torch.manual_seed(0)
    width, layers = 256, 4
    vit = CLIPVisionTransformer(arch=dict(width=width, layers=layers, heads=4, patch_size=16), img_size=32)
    attn_std, fc_std = width ** -0.5, (2 * width) ** -0.5
    proj_std = attn_std * (2 * layers) ** -0.5
    block = vit.transformer.resblocks[-1]
    for param, std in ((block.attn.in_proj_weight, attn_std), (block.attn.out_proj.weight, proj_std),
                       (block.mlp.c_fc.weight, fc_std), (block.mlp.c_proj.weight, proj_std),
                       (vit.positional_embedding, attn_std), (vit.proj, attn_std)):
        assert abs(param.std().item() / std - 1) < 0.05, (param.shape, param.std().item(), std)
    assert not block.attn.out_proj.bias.any() and not block.attn.in_proj_bias.any()


def test_grad_checkpointing_same_output_and_grads():
    torch.manual_seed(0)
    vit = tiny_vit().train()
    x = torch.randn(2, 3, 32, 32)
    vit(x).sum().backward()
    ref = [p.grad.clone() for p in vit.parameters()]
    vit.zero_grad()
    vit.set_grad_checkpointing(True)
    vit(x).sum().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(ref, vit.parameters()))


def test_position_embedding_interpolation_on_load():
    small = tiny_vit()
    big = CLIPVisionTransformer(arch=dict(width=32, layers=2, heads=2, patch_size=8), img_size=48,
                                output_dim=16)
    big.load_state_dict(small.state_dict())
    assert big.positional_embedding.shape == (37, 32)
    assert torch.equal(big.positional_embedding[0], small.positional_embedding[0])
    assert big(torch.randn(1, 3, 48, 48)).shape == (1, 16)
    # Same grid: untouched; a 2x2 grid upsampled keeps a constant table constant.
    pos = torch.ones(5, 4)
    assert torch.allclose(resize_pos_embed(pos, 17), torch.ones(17, 4))
    with pytest.raises(ValueError, match='square'):
        resize_pos_embed(torch.ones(6, 4), 17)


def test_rn50_official_keys_and_forward():
    rn = tiny_rn()
    keys = set(rn.state_dict())
    for key in ('conv1.weight', 'bn3.running_mean', 'layer1.0.conv1.weight', 'layer2.0.downsample.0.weight',
                'layer2.0.downsample.1.running_var', 'layer4.0.conv3.weight', 'attnpool.positional_embedding',
                'attnpool.q_proj.weight', 'attnpool.k_proj.bias', 'attnpool.v_proj.weight', 'attnpool.c_proj.weight'):
        assert key in keys, key
    assert rn(torch.randn(2, 3, 64, 64)).shape == (2, 16)
    assert rn.attnpool.heads == 8 * 32 // 64
    with torch.device('meta'):
        rn50 = ModifiedResNet('rn50')
    assert rn50.attnpool.positional_embedding.shape == (7 * 7 + 1, 2048)


def test_attention_pool_matches_reference():
    rn = tiny_rn().eval()
    pool = rn.attnpool
    x = torch.randn(2, 256, 2, 2)
    tokens = x.flatten(2).permute(2, 0, 1)
    tokens = torch.cat([tokens.mean(0, keepdim=True), tokens]) + pool.positional_embedding[:, None]
    ref, _ = torch.nn.functional.multi_head_attention_forward(
        tokens[:1], tokens, tokens, 256, pool.heads, None,
        torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]), None, None, False, 0.0,
        pool.c_proj.weight, pool.c_proj.bias, use_separate_proj_weight=True,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight, v_proj_weight=pool.v_proj.weight,
        need_weights=False)
    assert torch.allclose(pool(x), ref[0], atol=1e-5)


def test_lock_groups_and_bn_stay_eval():
    rn = tiny_rn()
    rn.lock(unlocked_groups=1)
    assert not rn.conv1.weight.requires_grad and not rn.layer4[0].conv1.weight.requires_grad
    assert rn.attnpool.c_proj.weight.requires_grad
    rn.train()
    assert not rn.bn1.training and not rn.layer4[0].bn1.training
    before = rn.bn1.running_mean.clone()
    rn(torch.randn(2, 3, 64, 64))
    assert torch.equal(before, rn.bn1.running_mean)
    rn.lock(unlocked_groups=1)  # idempotent
    assert rn.attnpool.c_proj.weight.requires_grad
    rn.unlock()
    rn.train()
    assert rn.bn1.training and all(p.requires_grad for p in rn.parameters())
    vit = tiny_vit()
    vit.lock(unlocked_groups=2)
    frozen = [n for n, p in vit.named_parameters() if not p.requires_grad]
    assert 'transformer.resblocks.0.ln_1.weight' in frozen and 'proj' not in frozen
    assert 'transformer.resblocks.1.attn.in_proj_weight' not in frozen
    with pytest.raises(ValueError, match='unlocked_groups'):
        vit.lock(unlocked_groups=9)


def test_bad_arch():
    with pytest.raises(KeyError, match='presets'):
        CLIPVisionTransformer('b-99')
    with pytest.raises(KeyError, match='lacks keys'):
        CLIPVisionTransformer(dict(width=8))
    with pytest.raises(ValueError, match='multiple of patch_size'):
        CLIPVisionTransformer(dict(width=8, layers=1, heads=2, patch_size=7), img_size=32)
