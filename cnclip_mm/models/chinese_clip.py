"""The Chinese CLIP algorithm: two towers, a text projection and a learnable temperature."""
import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from cnclip_mm.registry import MODELS
from cnclip_mm.structures import DataSample

from .adapters import apply_adapters, freeze_base
from .losses.context import batch_context
from .text_encoders.padding import trim_padding


@MODELS.register_module()
class ChineseCLIP(BaseModel):
    """Chinese CLIP (arXiv 2211.01335).

    The image tower projects to ``embed_dim`` itself (official ``visual.proj``); the text tower's [CLS]
    state goes through ``text_projection``. See docs/design.md for the inputs each mode takes.

    Args:
        image_encoder: config of an image tower (``CLIPVisionTransformer`` / ``ModifiedResNet``); its
            ``output_dim`` defaults to ``embed_dim``.
        text_encoder: config of a ``ChineseBertEncoder``.
        embed_dim: width of the joint embedding space.
        tokenizer: config of a ``ChineseTokenizer`` (used for raw strings and zero-shot prompts); configs
            usually leave it out and set their top-level ``tokenizer`` (``cnclip_mm.utils.share_tokenizer``).
        loss: config of the contrastive loss, called as ``loss(image_feats, text_feats, logit_scale)``.
        data_preprocessor: config of the data preprocessor; defaults to ``CLIPDataPreprocessor``.
        init_logit_scale: initial log temperature, ln(1/0.07).
        max_logit_scale: cap of the log temperature, ln(100).
        accum_freq: micro-batches whose features are cached for one optimizer step (official
            ``accum_freq``); 1 trains on each batch directly.
        adapters: LoRA per tower through peft, ``dict(image=dict(target_modules=[...], r=8, alpha=16,
            dropout=0.05), text=dict(...), trainable=[...])``: only the adapters (and ``trainable``)
            train, checkpoint keys stay the official ones plus ``lora_*`` (see ``models/adapters``).
        init_cfg: mmengine init config.
    """

    def __init__(self, image_encoder: dict, text_encoder: dict, embed_dim: int,
                 tokenizer: Optional[dict] = None, loss: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_logit_scale: float = math.log(1 / 0.07), max_logit_scale: float = math.log(100),
                 accum_freq: int = 1, adapters: Optional[dict] = None, init_cfg: Optional[dict] = None):
        preprocessor = MODELS.build(data_preprocessor or dict(type='CLIPDataPreprocessor'))
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        image_encoder = dict(image_encoder)
        image_encoder.setdefault('output_dim', embed_dim)
        self.image_encoder = MODELS.build(image_encoder)
        if self.image_encoder.output_dim != embed_dim:
            raise ValueError(f'image_encoder.output_dim={self.image_encoder.output_dim} differs from '
                             f'embed_dim={embed_dim}')
        self.text_encoder = MODELS.build(text_encoder)
        hidden = self.text_encoder.hidden_size
        self.embed_dim = embed_dim
        self.text_projection = nn.Parameter(torch.randn(hidden, embed_dim) * hidden ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_logit_scale = max_logit_scale
        self.loss_module = MODELS.build(loss or dict(type='ContrastiveLoss'))
        if isinstance(tokenizer, dict):  # a partial dict (e.g. only vocab_file) means a ChineseTokenizer
            tokenizer = MODELS.build({'type': 'ChineseTokenizer', **tokenizer})
        self.tokenizer = tokenizer
        _check_context_length(tokenizer, self.text_encoder)
        if accum_freq < 1:
            raise ValueError(f'accum_freq must be >= 1, got {accum_freq}')
        self.accum_freq = accum_freq
        self._accumulator = None
        self.class_embeddings: Optional[torch.Tensor] = None
        self.adapters = adapters
        if adapters:
            apply_adapters(self, adapters)

    # ------------------------------------------------------------------ features
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Projected image features (not normalised) of normalised images ``[N, 3, H, W]``."""
        return self.image_encoder(images)

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Projected text features (not normalised) of token ids ``[N, L]``."""
        return self.text_encoder(text_ids) @ self.text_projection

    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image features ``[N, D]``."""
        return F.normalize(self.encode_image(images), dim=-1)

    def extract_text_feat(self, texts: Union[torch.Tensor, Sequence[str]]) -> torch.Tensor:
        """L2-normalised text features ``[N, D]`` of token ids (used as given) or raw strings (tokenised
        and trimmed to the longest text on the CPU here, :func:`~.text_encoders.trim_padding`)."""
        if not isinstance(texts, torch.Tensor):
            texts = trim_padding(self.tokenize(texts), self.text_encoder.pad_token_id)
        return F.normalize(self.encode_text(texts.to(self.text_projection.device)), dim=-1)

    def tokenize(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        if self.tokenizer is None:
            raise RuntimeError('this model has no tokenizer: set model.tokenizer in the config '
                               "(dict(type='ChineseTokenizer', vocab_file=...)) or pass token ids")
        return self.tokenizer(texts)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: dict, data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self._features(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def _features(self, inputs: dict):
        images, text_ids = inputs.get('images'), inputs.get('text_ids')
        # Texts first: backward runs the image tower first (autograd starts from the nodes made
        # last), which frees more activation memory than its gradients take, so the text tower's
        # gradients land in memory already held instead of growing the peak (ViT-B/16 + RoBERTa-base,
        # batch 8: ~300 MiB lower, docs/speed.md). The order is fixed, so the random draws of both
        # towers (text dropout, FLIP patch masking) come in one order from one seed.
        text_feats = self.extract_text_feat(text_ids) if text_ids is not None else None
        image_feats = self.extract_image_feat(images) if images is not None else None
        return image_feats, text_feats

    def loss(self, inputs: dict, data_samples: Optional[List[DataSample]] = None) -> dict:
        """Contrastive loss of a batch of (image, text) pairs."""
        if inputs.get('images') is None or inputs.get('text_ids') is None or \
                inputs['image_slots'] != inputs['text_slots']:
            raise ValueError('loss mode needs every sample to carry both an image and text_ids')
        image_feats, text_feats = self._features(inputs)
        extra = batch_context(self.loss_module, inputs, data_samples)
        loss = self.loss_module(image_feats, text_feats, self.logit_scale, **extra)
        losses = loss if isinstance(loss, dict) else dict(loss=loss)
        return dict(losses, logit_scale=self.logit_scale.detach().exp().clamp(max=100))

    def predict(self, inputs: dict, data_samples: Optional[List[DataSample]] = None) -> List[DataSample]:
        """Write ``image_feat`` / ``text_feat`` (and zero-shot scores when classes are set) per sample."""
        image_feats, text_feats = self._features(inputs)
        if data_samples is None:
            count = max(inputs['image_slots'] + inputs['text_slots'], default=-1) + 1
            data_samples = [DataSample() for _ in range(count)]
        if image_feats is not None:
            scores = None
            if self.class_embeddings is not None:
                logits = 100.0 * image_feats @ self.class_embeddings.to(image_feats).t()
                scores = logits.softmax(dim=-1)
            for row, slot in enumerate(inputs['image_slots']):
                data_samples[slot].image_feat = image_feats[row]
                if scores is not None:
                    data_samples[slot].pred_score = scores[row]
                    data_samples[slot].pred_label = scores[row].argmax(dim=-1, keepdim=True)
        if text_feats is not None:
            for row, slot in enumerate(inputs['text_slots']):
                data_samples[slot].text_feat = text_feats[row]
        return data_samples

    def train_step(self, data, optim_wrapper):
        if self.accum_freq == 1:
            return super().train_step(data, optim_wrapper)
        if self._accumulator is None:
            from .feature_cache import FeatureCacheAccumulator
            self._accumulator = FeatureCacheAccumulator(self, self.accum_freq)
        return self._accumulator.train_step(data, optim_wrapper)

    # ------------------------------------------------------------------ zero-shot
    @torch.no_grad()
    def set_zeroshot_classes(self, class_names: Sequence[str], templates: Sequence[str],
                             batch_size: int = 256) -> torch.Tensor:
        """Build class embeddings: mean of the normalised features of every prompt, re-normalised.

        Returns and caches ``[C, D]`` so that 'predict' mode adds ``pred_score`` to image samples.
        """
        if not class_names or not templates:
            raise ValueError('zero-shot classification needs at least one class name and one template')
        was_training = self.training
        self.eval()
        prompts = [template.format(name) for name in class_names for template in templates]
        feats = torch.cat([self.extract_text_feat(prompts[i:i + batch_size])
                           for i in range(0, len(prompts), batch_size)])
        feats = feats.view(len(class_names), len(templates), -1).mean(dim=1)
        self.class_embeddings = F.normalize(feats, dim=-1)
        self.train(was_training)
        return self.class_embeddings

    def clear_zeroshot_classes(self) -> None:
        self.class_embeddings = None

    # ------------------------------------------------------------------ locking
    def lock_image_tower(self, unlocked_groups: int = 0, freeze_bn_stats: bool = True) -> None:
        """Freeze the image tower except its last ``unlocked_groups`` groups; idempotent."""
        self.image_encoder.lock(unlocked_groups, freeze_bn_stats)
        self._keep_base_frozen()

    def unlock_image_tower(self) -> None:
        self.image_encoder.unlock()
        self._keep_base_frozen()

    def lock_text_tower(self, unlocked_layers: int = 0, freeze_layer_norm: bool = True) -> None:
        """Freeze the text tower except its last ``unlocked_layers`` layers; idempotent."""
        self.text_encoder.lock(unlocked_layers, freeze_layer_norm)
        self._keep_base_frozen()

    def unlock_text_tower(self) -> None:
        self.text_encoder.unlock()
        self._keep_base_frozen()

    def _keep_base_frozen(self) -> None:
        # With adapters, unlocking a tower means its adapters train; its base weights never do.
        if self.adapters:
            freeze_base(self)

    @property
    def image_tower_locked(self) -> bool:
        return self.image_encoder.locked

    @property
    def text_tower_locked(self) -> bool:
        return self.text_encoder.locked

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep the temperature in [0, ln 100] as the official training loop does after each step."""
        self.logit_scale.clamp_(0, self.max_logit_scale)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for tower in (self.image_encoder, self.text_encoder):
            if hasattr(tower, 'set_grad_checkpointing'):
                tower.set_grad_checkpointing(enable)


def _check_context_length(tokenizer, text_encoder: nn.Module) -> None:
    """The ids must fit the text tower's learned positions (512 in every released Chinese CLIP)."""
    context = getattr(tokenizer, 'context_length', None)
    positions = getattr(getattr(text_encoder, 'config', None), 'max_position_embeddings', None)
    if context is not None and positions is not None and context > positions:
        raise ValueError(f'tokenizer.context_length={context} exceeds the text tower\'s {positions} positions '
                         f'(text_encoder max_position_embeddings); set tokenizer.context_length <= {positions}')
