"""Checkpoint builders for the converter tests (a uniquely named module so tests can import it): official-layout state dicts written from the key list in
../shared/REFERENCE.md (not from the model code), and a tiny random Hugging Face ChineseCLIPModel folder."""
import torch

VOCAB = 21128
TEXT = dict(hidden=48, layers=2, intermediate=96, positions=64)


def _randn(*shape):
    return torch.randn(*shape)


def _linear(sd, name, out_dim, in_dim):
    sd[f'{name}.weight'] = _randn(out_dim, in_dim) * in_dim ** -0.5
    sd[f'{name}.bias'] = _randn(out_dim) * 0.1


def _layer_norm(sd, name, dim):
    sd[f'{name}.weight'] = 1 + 0.1 * _randn(dim)
    sd[f'{name}.bias'] = 0.1 * _randn(dim)


def _batch_norm(sd, name, dim):
    _layer_norm(sd, name, dim)
    sd[f'{name}.running_mean'] = 0.1 * _randn(dim)
    sd[f'{name}.running_var'] = 1 + 0.1 * torch.rand(dim)
    sd[f'{name}.num_batches_tracked'] = torch.tensor(7)


def official_bert(sd, hidden=TEXT['hidden'], layers=TEXT['layers'], intermediate=TEXT['intermediate'],
                  positions=TEXT['positions'], pooler=True):
    """``bert.*`` keys (transformers BertModel names) plus ``text_projection`` is added by the caller."""
    sd['bert.embeddings.word_embeddings.weight'] = _randn(VOCAB, hidden) * 0.1
    sd['bert.embeddings.position_embeddings.weight'] = _randn(positions, hidden) * 0.1
    sd['bert.embeddings.token_type_embeddings.weight'] = _randn(2, hidden) * 0.1
    _layer_norm(sd, 'bert.embeddings.LayerNorm', hidden)
    for i in range(layers):
        head = f'bert.encoder.layer.{i}'
        for part in ('query', 'key', 'value'):
            _linear(sd, f'{head}.attention.self.{part}', hidden, hidden)
        _linear(sd, f'{head}.attention.output.dense', hidden, hidden)
        _layer_norm(sd, f'{head}.attention.output.LayerNorm', hidden)
        _linear(sd, f'{head}.intermediate.dense', intermediate, hidden)
        _linear(sd, f'{head}.output.dense', hidden, intermediate)
        _layer_norm(sd, f'{head}.output.LayerNorm', hidden)
    if pooler:  # present in official files, unused
        _linear(sd, 'bert.pooler.dense', hidden, hidden)


def official_vit_state_dict(width=64, layers=2, patch=8, img=32, embed=32, text_hidden=TEXT['hidden']):
    """An official ViT Chinese-CLIP state dict (no ``module.`` prefix) with random tensors."""
    sd = {}
    grid = img // patch
    sd['visual.conv1.weight'] = _randn(width, 3, patch, patch) * 0.05
    sd['visual.class_embedding'] = _randn(width) * 0.1
    sd['visual.positional_embedding'] = _randn(grid * grid + 1, width) * 0.1
    _layer_norm(sd, 'visual.ln_pre', width)
    for i in range(layers):
        head = f'visual.transformer.resblocks.{i}'
        sd[f'{head}.attn.in_proj_weight'] = _randn(3 * width, width) * width ** -0.5
        sd[f'{head}.attn.in_proj_bias'] = _randn(3 * width) * 0.1
        _linear(sd, f'{head}.attn.out_proj', width, width)
        _layer_norm(sd, f'{head}.ln_1', width)
        _layer_norm(sd, f'{head}.ln_2', width)
        _linear(sd, f'{head}.mlp.c_fc', 4 * width, width)
        _linear(sd, f'{head}.mlp.c_proj', width, 4 * width)
    _layer_norm(sd, 'visual.ln_post', width)
    sd['visual.proj'] = _randn(width, embed) * width ** -0.5
    official_bert(sd, hidden=text_hidden)
    sd['text_projection'] = _randn(text_hidden, embed) * text_hidden ** -0.5
    sd['logit_scale'] = torch.tensor(4.0)
    return sd


def official_rn_state_dict(blocks=(1, 1, 1, 1), width=8, img=64, embed=32):
    """An official RN50-style state dict (ModifiedResNet + attention pool) with random tensors."""
    sd = {}
    half = width // 2
    sd['visual.conv1.weight'] = _randn(half, 3, 3, 3) * 0.2
    _batch_norm(sd, 'visual.bn1', half)
    sd['visual.conv2.weight'] = _randn(half, half, 3, 3) * 0.2
    _batch_norm(sd, 'visual.bn2', half)
    sd['visual.conv3.weight'] = _randn(width, half, 3, 3) * 0.2
    _batch_norm(sd, 'visual.bn3', width)
    inplanes = width
    for stage, count in enumerate(blocks):
        planes = width * 2 ** stage
        for j in range(count):
            head = f'visual.layer{stage + 1}.{j}'
            sd[f'{head}.conv1.weight'] = _randn(planes, inplanes, 1, 1) * 0.2
            _batch_norm(sd, f'{head}.bn1', planes)
            sd[f'{head}.conv2.weight'] = _randn(planes, planes, 3, 3) * 0.2
            _batch_norm(sd, f'{head}.bn2', planes)
            sd[f'{head}.conv3.weight'] = _randn(planes * 4, planes, 1, 1) * 0.2
            _batch_norm(sd, f'{head}.bn3', planes * 4)
            if j == 0 and (stage > 0 or inplanes != planes * 4):
                sd[f'{head}.downsample.0.weight'] = _randn(planes * 4, inplanes, 1, 1) * 0.2
                _batch_norm(sd, f'{head}.downsample.1', planes * 4)
            inplanes = planes * 4
    dim = width * 32
    sd['visual.attnpool.positional_embedding'] = _randn((img // 32) ** 2 + 1, dim) * dim ** -0.5
    for name in ('q_proj', 'k_proj', 'v_proj'):
        _linear(sd, f'visual.attnpool.{name}', dim, dim)
    _linear(sd, 'visual.attnpool.c_proj', embed, dim)
    official_bert(sd)
    sd['text_projection'] = _randn(TEXT['hidden'], embed) * TEXT['hidden'] ** -0.5
    sd['logit_scale'] = torch.tensor(4.0)
    return sd


def save_official(sd, path, ddp=True):
    """Save like the official trainer: a dict with epoch/step/name/state_dict/optimizer, ``module.`` keys."""
    state = {('module.' + k if ddp else k): v for k, v in sd.items()}
    torch.save(dict(epoch=3, step=120, name='tiny', state_dict=state, optimizer={}), path)
    return str(path)


def tiny_hf_config():
    from transformers import ChineseCLIPConfig
    text = dict(vocab_size=VOCAB, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                max_position_embeddings=64, hidden_act='gelu', layer_norm_eps=1e-12)
    vision = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, patch_size=8,
                  image_size=32, hidden_act='quick_gelu', layer_norm_eps=1e-5, projection_dim=32)
    return ChineseCLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
