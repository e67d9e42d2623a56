"""What the endpoints do, apart from HTTP: embed, classify and search through the batched model."""
import asyncio
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch

from cnclip_mm.evaluation.templates import load_templates

from .batcher import Batcher
from .encoder import Encoder
from .errors import InputError
from .images import decode_image
from .limits import Limits


class EmbeddingService:
    """The model behind a batcher, zero-shot classifiers per class list, and an optional vector index.

    Args:
        encoder: the model and its backend.
        name: the model's name in responses.
        limits: the request limits.
        max_batch: most items per model call (1: no batching).
        max_wait_s: under load, how long a batch that is not full waits for more requests.
        index: a :class:`cnclip_mm.index.VectorIndex` for ``/search`` (checked against the model), or None.
        templates: zero-shot prompt templates (default: the project's default set, as the inferencer's).
        cached_class_lists: how many class lists keep their class embeddings.
    """

    def __init__(self, encoder: Encoder, name: str, limits: Limits = Limits(), max_batch: int = 32,
                 max_wait_s: float = 0.005, index=None, templates: Optional[Union[str, Sequence[str]]] = None,
                 cached_class_lists: int = 16) -> None:
        self.encoder = encoder
        self.name = name
        self.limits = limits
        self.batcher = Batcher(encoder.compute, max_batch=max_batch, max_wait_s=max_wait_s)
        self.index = index
        self.templates = load_templates(templates)  # a bad name or file fails at start, not per request
        self.cached_class_lists = cached_class_lists
        self._classifiers: OrderedDict[Tuple[str, ...], object] = OrderedDict()

    async def start(self) -> None:
        await self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()

    async def embed_texts(self, texts: List[str]) -> Tuple[torch.Tensor, int]:
        """``([N, D] features, token count)``; texts must have passed :meth:`Limits.check_texts`."""
        feats, tokens = await self.batcher.submit('text', texts)
        return feats, int(tokens.sum())

    async def embed_images(self, images: List[str], field: str) -> List[Union[torch.Tensor, InputError]]:
        """Per base64 image its ``[D]`` feature, or the :class:`InputError` that refused it alone."""
        inputs = await asyncio.to_thread(self._prepare_images, images, field)
        good = [i for i, item in enumerate(inputs) if isinstance(item, torch.Tensor)]
        if good:
            feats = await self.batcher.submit('image', [inputs[i] for i in good])
            for row, i in enumerate(good):
                inputs[i] = feats[row]
        return inputs

    def _prepare_images(self, images: List[str], field: str) -> list:
        out = []
        for i, data in enumerate(images):
            where = f'{field}[{i}]' if len(images) > 1 else field
            try:
                out.append(self.encoder.preprocess(decode_image(data, self.limits, where)))
            except InputError as err:
                out.append(err)
        return out

    async def search(self, query: torch.Tensor, top_k: int) -> List[dict]:
        """The ``top_k`` nearest gallery items of one ``[D]`` feature: ``[{'id', 'score'}]``, best first
        (cosine; an approximate index may return fewer)."""
        ids, scores = await asyncio.to_thread(self.index.search, query[None].numpy(), top_k)
        return [{'id': str(item), 'score': float(score)} for item, score in zip(ids[0], scores[0])
                if item is not None]

    async def classify(self, images: List[str], classes: List[str], top_k: int) -> list:
        """Per image the zero-shot result of :class:`~cnclip_mm.apis.ZeroShotClassificationInferencer`
        (``pred_class``, ``pred_score``, ``topk_*`` cut to ``top_k``, ``pred_scores``), or its InputError."""
        feats = await self.embed_images(images, 'images')
        if all(isinstance(item, InputError) for item in feats):
            return feats  # nothing to classify: the class embeddings are not worth building
        classifier = await self._classifier(classes)
        results = []
        for item in feats:
            if isinstance(item, InputError):
                results.append(item)
                continue
            result = classifier.postprocess(item[None], [None])[0]
            for key in ('topk_labels', 'topk_scores', 'topk_classes'):
                result[key] = result[key][:top_k]
            result['pred_scores'] = result['pred_scores'].tolist()
            results.append(result)
        return results

    async def _classifier(self, classes: List[str]):
        key = tuple(classes)
        if key in self._classifiers:
            self._classifiers.move_to_end(key)
            return self._classifiers[key]
        classifier = await self.batcher.run_exclusive(self._build_classifier, classes)
        self._classifiers[key] = classifier
        while len(self._classifiers) > self.cached_class_lists:
            self._classifiers.popitem(last=False)
        return classifier

    def _build_classifier(self, classes: List[str]):
        from cnclip_mm.apis import ZeroShotClassificationInferencer
        device = next(self.encoder.model.parameters()).device
        return ZeroShotClassificationInferencer(self.encoder.model, classes=classes, templates=self.templates,
                                                topk=len(classes), backend=self.encoder.backend,
                                                device=str(device))
