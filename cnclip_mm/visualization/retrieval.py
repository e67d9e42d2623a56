"""Pictures of retrieval and zero-shot results.

Colours and "gt" / "hit" / "miss" appear only where a ground truth was given; without one a picture shows
ranks, scores and the prediction as a prediction. Every text drawn is also stored in the PNG's
``Description`` text chunk (one line per text), so the pictures can be checked and searched as text.
"""
import os
from typing import List, Optional, Sequence

import numpy as np

HIT, MISS, NEUTRAL = '#1a9850', '#d73027', '#4d4d4d'


def retrieval_labels(hits: Optional[Sequence[bool]], scores: Optional[Sequence[float]],
                     labels: Optional[Sequence[str]], n: int) -> List[str]:
    """The text under each ranked image: rank, ``hit``/``miss`` when ``hits`` is given, id and score."""
    out = []
    for i in range(n):
        parts = [f'#{i + 1}']
        if hits is not None:
            parts.append('hit' if hits[i] else 'miss')
        if labels is not None:
            parts.append(str(labels[i]))
        if scores is not None:
            parts.append(f'score {scores[i]:.3f}')
        out.append(' '.join(parts))
    return out


def zeroshot_texts(names: Sequence[str], scores: Sequence[float], gt: Optional[str]) -> List[str]:
    """``[title, ranked list]`` for one image: ``gt: NAME`` with a ground truth, else the top-1 prediction
    and its probability."""
    title = f'gt: {gt}' if gt is not None else f'prediction: {names[0]} ({scores[0]:.1%})'
    return [title, '\n'.join(f'{name} {score:.1%}' for name, score in zip(names, scores))]


def render_retrieval_example(caption: str, images: Sequence[np.ndarray], hits: Optional[Sequence[bool]],
                             out_file: str, scores: Optional[Sequence[float]] = None,
                             labels: Optional[Sequence[str]] = None, font_path: Optional[str] = None) -> str:
    """Save one PNG: the caption on top, then the ranked images in a row.

    Args:
        caption: the query text.
        images: HWC uint8 RGB arrays, best first.
        hits: whether each image is a correct answer (frames green / red); None when unknown (grey frames,
            no hit / miss).
        out_file: the PNG path (folders created).
        scores: similarity per image, printed under it.
        labels: a name per image (e.g. image id), printed under it.
        font_path: a font file to use instead of the shipped CJK font.

    Returns:
        ``out_file``.
    """
    plt, font = _pyplot(font_path)
    n = max(1, len(images))
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.9), squeeze=False)
    texts = [caption]
    for i, (ax, text) in enumerate(zip(axes[0], retrieval_labels(hits, scores, labels, len(images)))):
        color = NEUTRAL if hits is None else HIT if hits[i] else MISS
        _show(ax, images[i], color)
        ax.set_xlabel(text, color=color, fontproperties=font)
        texts.append(text)
    for ax in axes[0][len(images):]:
        ax.axis('off')
    fig.suptitle(caption, fontproperties=font, fontsize=13)
    return _save(fig, plt, out_file, texts)


def render_zeroshot_examples(images: Sequence[np.ndarray], top_names: Sequence[Sequence[str]],
                             top_scores: Sequence[Sequence[float]], gt_names: Optional[Sequence[Optional[str]]],
                             out_file: str, font_path: Optional[str] = None) -> str:
    """Save one PNG: each image with its top-k class names and probabilities.

    With a ground-truth name (``gt_names[i]``) the title is ``gt: NAME`` and the frame green when the top-1
    is right, red when wrong; without one (``gt_names`` None or an entry None) the title is the prediction
    with its probability and the frame grey.
    """
    plt, font = _pyplot(font_path)
    n = max(1, len(images))
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 3.6), squeeze=False)
    gts = list(gt_names) if gt_names is not None else [None] * len(images)
    texts = []
    for ax, img, names, scores, gt in zip(axes[0], images, top_names, top_scores, gts):
        color = NEUTRAL if gt is None else HIT if names and names[0] == gt else MISS
        _show(ax, img, color)
        title, ranked = zeroshot_texts(names, scores, gt)
        ax.set_title(title, fontproperties=font, fontsize=10)
        ax.set_xlabel(ranked, fontproperties=font, fontsize=9, color=color)
        texts += [title, *ranked.split('\n')]
    for ax in axes[0][len(images):]:
        ax.axis('off')
    return _save(fig, plt, out_file, texts)


def _pyplot(font_path: Optional[str]):
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    from .fonts import cjk_font_properties
    return plt, cjk_font_properties(font_path)


def _show(ax, image: np.ndarray, color: str) -> None:
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(5)


def _save(fig, plt, out_file: str, texts: Sequence[str]) -> str:
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=80, metadata={'Description': '\n'.join(texts)})
    plt.close(fig)
    return out_file
