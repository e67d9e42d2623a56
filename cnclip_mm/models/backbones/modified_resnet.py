"""OpenAI CLIP's ModifiedResNet (3-conv stem, anti-aliased strides, attention pooling); official key names."""
from collections import OrderedDict
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from cnclip_mm.registry import MODELS

from .utils import LockableTower, resize_pos_embed, resolve_arch


class Bottleneck(nn.Module):
    """ResNet bottleneck whose stride is an average pool before the last 1x1 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            # Official names: '-1' (pool, no params), '0' (conv), '1' (bn).
            self.downsample = nn.Sequential(OrderedDict([
                ('-1', nn.AvgPool2d(stride)),
                ('0', nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False)),
                ('1', nn.BatchNorm2d(planes * self.expansion)),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.avgpool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class AttentionPool2d(nn.Module):
    """Pools a feature map by letting its mean token attend over all positions."""

    def __init__(self, spatial_dim: int, embed_dim: int, heads: int, output_dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(
            torch.randn(spatial_dim * spatial_dim + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
        pos = self.positional_embedding
        # An exported graph has the fixed image size of its meta.json: tracing never takes the resize.
        if not torch.jit.is_tracing() and pos.shape[0] != x.shape[1]:
            pos = resize_pos_embed(pos, x.shape[1])
        x = x + pos.to(x.dtype)
        n, length, channels = x.shape
        head_dim = channels // self.heads
        q = self.q_proj(x[:, :1]).view(n, 1, self.heads, head_dim).transpose(1, 2)
        k = self.k_proj(x).view(n, length, self.heads, head_dim).transpose(1, 2)
        v = self.v_proj(x).view(n, length, self.heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, channels)
        return self.c_proj(out)


@MODELS.register_module()
class ModifiedResNet(LockableTower, BaseModule):
    """The RN50 image tower of Chinese CLIP.

    Args:
        arch: ``'rn50'`` or a dict with ``layers`` (4 block counts) and ``width`` (stem width).
        img_size: input resolution (a multiple of 32); defaults to 224.
        output_dim: projected feature width; defaults to the preset's 1024.
        heads: attention-pool heads; defaults to ``width * 32 // 64`` as in the official configs.
    """

    arch_zoo = {'rn50': dict(layers=(3, 4, 6, 3), width=64, img_size=224, output_dim=1024)}

    def __init__(self, arch: Union[str, dict] = 'rn50', img_size: Optional[int] = None,
                 output_dim: Optional[int] = None, heads: Optional[int] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        cfg = resolve_arch(self.arch_zoo, arch, ('layers', 'width'))
        width = cfg['width']
        self.layers = tuple(cfg['layers'])
        self.width = width
        self.img_size = img_size or cfg.get('img_size', 224)
        self.output_dim = output_dim or cfg.get('output_dim', 1024)
        if self.img_size % 32:
            raise ValueError(f'img_size {self.img_size} is not a multiple of 32')
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        self._inplanes = width
        self.layer1 = self._make_layer(width, self.layers[0])
        self.layer2 = self._make_layer(width * 2, self.layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, self.layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, self.layers[3], stride=2)
        embed_dim = width * 32
        self.attnpool = AttentionPool2d(self.img_size // 32, embed_dim, heads or embed_dim // 64,
                                        self.output_dim)
        self._init_attnpool_and_bn()

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_attnpool_and_bn(self) -> None:
        std = self.attnpool.c_proj.in_features ** -0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                nn.init.zeros_(block.bn3.weight)  # residual branches start as identity

    def lock_groups(self) -> list:
        stem = [self.conv1, self.bn1, self.conv2, self.bn2, self.conv3, self.bn3]
        return [stem, [self.layer1], [self.layer2], [self.layer3], [self.layer4], [self.attnpool]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = self.avgpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'attnpool.positional_embedding'
        own = self.attnpool.positional_embedding
        if key in state_dict and state_dict[key].shape != own.shape:
            state_dict[key] = resize_pos_embed(state_dict[key], own.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
