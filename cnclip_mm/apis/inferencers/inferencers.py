"""Zero-shot classification, text<->image retrieval and feature extraction, in mmpretrain's inferencer shape."""
import os
import os.path as osp
from typing import Any, List, Optional, Sequence, Union

import torch

from cnclip_mm.evaluation.templates import load_templates

from .base import BaseInferencer, display_image, item_name
from .gallery_search import GallerySearch


class ZeroShotClassificationInferencer(BaseInferencer):
    """Classify images among user classes: class embedding = mean over ``templates`` of the normalised
    features of ``template.format(prototype)``, logits ``scale * image_feat @ class_emb.T`` with the model's
    own learned scale (``logit_scale.exp()``, at most 100: exactly 100 for the released weights), softmax.

    ``ZeroShotClassificationInferencer(NAME, pretrained=True, classes=['鸟', '狗'])('bird.jpg')[0]['pred_class']``

    Args:
        classes: names reported in the results.
        text_prototype: the text put into the templates per class (default: ``classes``), as mmpretrain's
            ``text_prototype``.
        templates: prompt templates, a built-in set name (``'openai'``, ``'imagenet'``, ``'cifar100'``, ...)
            or a file; default the 183 official ``'openai'`` prompts.
        topk: how many best classes each result lists.
        Others: see :class:`BaseInferencer`.
    """

    def __init__(self, model: Any, pretrained: Union[bool, str] = False, classes: Sequence[str] = (),
                 text_prototype: Optional[Sequence[str]] = None, templates: Union[str, Sequence[str], None] = None,
                 topk: int = 5, **kwargs) -> None:
        super().__init__(model, pretrained=pretrained, **kwargs)
        if not classes:
            raise ValueError('ZeroShotClassificationInferencer needs a non-empty list of classes')
        prototypes = list(text_prototype) if text_prototype is not None else list(classes)
        if len(prototypes) != len(classes):
            raise ValueError(f'text_prototype has {len(prototypes)} entries for {len(classes)} classes')
        self.classes = [str(c) for c in classes]
        self.topk = topk
        self.templates = load_templates(templates)
        feats = self.text_features([t.format(p) for t in self.templates for p in prototypes])
        emb = feats.view(len(self.templates), len(prototypes), -1).mean(dim=0)
        self.class_embeddings = emb / emb.norm(dim=-1, keepdim=True)
        self.logit_scale = float(self.model.logit_scale.detach().exp().clamp(max=100))

    def postprocess(self, feats: torch.Tensor, chunk: Sequence[Any], **kwargs) -> List[dict]:
        cosines = feats @ self.class_embeddings.T
        probs = (self.logit_scale * cosines).softmax(dim=-1)
        match_probs, kept = self.score_filter(cosines)
        k = min(self.topk, len(self.classes))
        out = []
        for r, row in enumerate(probs):
            scores, labels = row.topk(k)
            res = dict(pred_label=int(labels[0]), pred_score=float(scores[0]),
                       pred_class=self.classes[int(labels[0])], pred_scores=row.numpy(),
                       topk_labels=labels.tolist(), topk_scores=scores.tolist(),
                       topk_classes=[self.classes[i] for i in labels.tolist()])
            if match_probs is not None or kept is not None:
                res['topk_cosines'] = cosines[r, labels].tolist()
            if match_probs is not None:  # each class's own match probability, not a share of 1
                res.update(topk_probs=match_probs[r, labels].tolist(), pred_prob=float(match_probs[r, labels[0]]))
            out.append(res if kept is None else _drop_classes(res, kept[r, labels].tolist()))
        return out

    def visualize(self, items, results, show_dir):
        """One picture per image titled with its prediction and probability (no ground truth is known
        here), numbered on from the pictures already in ``show_dir``."""
        from cnclip_mm.visualization import numbered_paths, render_zeroshot_examples
        paths = numbered_paths(show_dir, [osp.splitext(item_name(item, i))[0] for i, item in enumerate(items)])
        return [render_zeroshot_examples([display_image(item)], [res['topk_classes']], [res['topk_scores']],
                                         None, path)
                for item, res, path in zip(items, results, paths)]


class TextToImageRetrievalInferencer(BaseInferencer):
    """Search a gallery of images with Chinese text queries.

    With ``index`` (tools/index/build_index.py, made by this model) the index is searched; otherwise the
    gallery's features are computed once and cached in ``cache_file`` (default: under
    ``$CNCLIP_HOME/gallery``, named by a fingerprint of model and gallery; a changed gallery is re-encoded)
    and searched by brute force (see :class:`GallerySearch`).

    Args:
        gallery: a folder, an official ``*_imgs.tsv``, a glob or a list of images (see :class:`Gallery`); with
            an index only needed for pictures (``show_dir``).
        index: an index folder or an open :class:`cnclip_mm.index.VectorIndex`.
        topk: matches per query.
        cache_file: where to keep the gallery features.
        Others: see :class:`BaseInferencer`.
    """

    def __init__(self, model: Any, pretrained: Union[bool, str] = False, gallery: Any = None, topk: int = 5,
                 cache_file: Optional[str] = None, index: Any = None, **kwargs) -> None:
        super().__init__(model, pretrained=pretrained, **kwargs)
        self.search = GallerySearch(self.image_features, self.model, self.backend.name, gallery, index, cache_file)
        self.gallery, self.gallery_feats, self.gallery_from_cache = (self.search.gallery, self.search.feats,
                                                                     self.search.from_cache)
        self.topk = topk

    def preprocess_inputs(self, inputs: Union[str, Sequence[str]]) -> List[str]:
        return [inputs] if isinstance(inputs, str) else list(inputs)

    def preprocess(self, chunk: Sequence[str]) -> torch.Tensor:
        return self.model.tokenize(list(chunk))

    def forward(self, text_ids: torch.Tensor) -> torch.Tensor:
        return self.backend.text_feats(text_ids)

    def postprocess(self, feats: torch.Tensor, chunk: Sequence[str], **kwargs) -> List[dict]:
        return _ranked_matches(*self.search.topk(feats, self.topk), chunk, 'text', self.score_filter)

    def visualize(self, items, results, show_dir):
        """One picture per query with its ranked images, ids and scores (no hit / miss: which images are
        right is not known), numbered on from the pictures already in ``show_dir``."""
        from cnclip_mm.visualization import numbered_paths, render_retrieval_example
        if self.gallery is None:
            raise ValueError('show_dir needs the images: pass gallery= beside index=')
        written = []
        for res, path in zip(results, numbered_paths(show_dir, ['query'] * len(results))):
            images = [display_image(self.search.item(m)) for m in res['matches']]
            written.append(render_retrieval_example(
                res['text'], images, None, path, scores=[m['score'] for m in res['matches']],
                labels=[m['id'] for m in res['matches']]))
        return written


class ImageToImageRetrievalInferencer(BaseInferencer):
    """Find the gallery images most similar to query images (cosine of image features), from an index or
    by brute force over a gallery (see :class:`TextToImageRetrievalInferencer` for ``gallery`` / ``index`` /
    ``cache_file``). ``threshold`` compares the raw cosine; ``calibration`` (fitted on text-image pairs, whose
    cosines have another scale) is refused.

    ``ImageToImageRetrievalInferencer(NAME, pretrained=True, index='photos.index')('query.jpg')[0]['matches']``
    """

    def __init__(self, model: Any, pretrained: Union[bool, str] = False, gallery: Any = None, topk: int = 5,
                 cache_file: Optional[str] = None, index: Any = None, **kwargs) -> None:
        super().__init__(model, pretrained=pretrained, **kwargs)
        if self.calibration is not None:
            raise ValueError('calibration is fitted on text-image cosines; image-image search takes a raw '
                             'cosine threshold only')
        self.search = GallerySearch(self.image_features, self.model, self.backend.name, gallery, index, cache_file)
        self.gallery = self.search.gallery
        self.topk = topk

    def postprocess(self, feats: torch.Tensor, chunk: Sequence[Any], **kwargs) -> List[dict]:
        return _ranked_matches(*self.search.topk(feats, self.topk), chunk, 'image', self.score_filter)


class ImageToTextRetrievalInferencer(BaseInferencer):
    """Rank candidate texts for each image.

    Args:
        texts: the candidate texts, or a UTF-8 file with one text per line.
        topk: matches per image.
        Others: see :class:`BaseInferencer`.
    """

    def __init__(self, model: Any, pretrained: Union[bool, str] = False, texts: Union[str, Sequence[str]] = (),
                 topk: int = 5, **kwargs) -> None:
        super().__init__(model, pretrained=pretrained, **kwargs)
        if isinstance(texts, (str, os.PathLike)):
            with open(texts, encoding='utf-8') as f:
                texts = [line.strip() for line in f if line.strip()]
        if not texts:
            raise ValueError('ImageToTextRetrievalInferencer needs candidate texts')
        self.texts = list(texts)
        self.topk = topk
        self.text_feats = self.text_features(self.texts)

    def postprocess(self, feats: torch.Tensor, chunk: Sequence[Any], **kwargs) -> List[dict]:
        results = _matches(feats @ self.text_feats.T, chunk, 'image', list(range(len(self.texts))), self.topk,
                           self.score_filter)
        for res in results:
            for match in res['matches']:
                match['text'] = self.texts[match['index']]
        return results


class FeatureExtractor(BaseInferencer):
    """L2-normalised features: ``__call__(images)`` -> ``[{'image_feat': Tensor[D]}]``;
    ``__call__(texts, modality='text')`` -> ``[{'text_feat': Tensor[D]}]``."""

    def __call__(self, inputs: Any, batch_size: Optional[int] = None, show_dir: Optional[str] = None,
                 modality: str = 'image') -> List[dict]:
        if modality == 'text':
            texts = [inputs] if isinstance(inputs, str) else list(inputs)
            return [dict(text_feat=f) for f in self.text_features(texts, batch_size)]
        if modality != 'image':
            raise ValueError(f"modality must be 'image' or 'text', got {modality!r}")
        return super().__call__(inputs, batch_size=batch_size, show_dir=show_dir)

    def postprocess(self, feats: torch.Tensor, chunk: Sequence[Any], **kwargs) -> List[dict]:
        return [dict(image_feat=f) for f in feats]


def _matches(similarity: torch.Tensor, queries: Sequence[Any], key: str, ids: Sequence[Any],
             topk: int, score_filter=None) -> List[dict]:
    scores, indices = similarity.topk(min(topk, similarity.shape[1]), dim=1)
    rows = indices.tolist()
    return _ranked_matches(scores, [[ids[i] for i in row] for row in rows], rows, queries, key, score_filter)


def _ranked_matches(scores: torch.Tensor, ids: List[list], indices: List[list], queries: Sequence[Any], key: str,
                    score_filter=None) -> List[dict]:
    """One result per query: ``scores`` ``[Q, k]`` best first, with the matches' ids and gallery positions."""
    probs, kept = score_filter(scores) if score_filter is not None else (None, None)
    out = []
    for r, (query, row_s, row_ids, row_i) in enumerate(zip(queries, scores.tolist(), ids, indices)):
        matches = [dict(index=i, id=n, score=s) for s, n, i in zip(row_s, row_ids, row_i)]
        if probs is not None:
            for match, prob in zip(matches, probs[r].tolist()):
                match['prob'] = prob
        res = {key: query if isinstance(query, str) else item_name(query, len(out)), 'matches': matches}
        if kept is not None:
            res['matches'] = [m for m, keep in zip(matches, kept[r].tolist()) if keep]
            res['num_dropped'] = len(matches) - len(res['matches'])
        out.append(res)
    return out


def _drop_classes(res: dict, keep: List[bool]) -> dict:
    """Zero-shot result without the top-k classes below the threshold; none left: ``pred_class`` None."""
    for name in ('topk_labels', 'topk_scores', 'topk_classes', 'topk_cosines', 'topk_probs'):
        if name in res:
            res[name] = [v for v, k in zip(res[name], keep) if k]
    res['num_dropped'] = len(keep) - sum(keep)
    if not keep[0]:
        res.update(pred_label=-1, pred_class=None)
    return res
