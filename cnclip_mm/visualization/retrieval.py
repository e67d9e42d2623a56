"""Pictures of retrieval results: a caption and its top-k images, hits framed green, misses red."""
import os
from typing import Optional, Sequence

import numpy as np


def render_retrieval_example(caption: str, images: Sequence[np.ndarray], hits: Sequence[bool],
                             out_file: str, scores: Optional[Sequence[float]] = None,
                             labels: Optional[Sequence[str]] = None, font_path: Optional[str] = None) -> str:
    """Save one PNG: the caption on top, then the ranked images in a row.

    Args:
        caption: the query text (Chinese rendered with a CJK font when one is found).
        images: HWC uint8 RGB arrays, best first.
        hits: whether each image is a correct answer.
        out_file: the PNG path (folders created).
        scores: similarity per image, printed under it.
        labels: a name per image (e.g. image id), printed under it.
        font_path: a font file to use instead of searching.

    Returns:
        ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    from .fonts import cjk_font_properties

    font = cjk_font_properties(font_path)
    n = max(1, len(images))
    fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.9), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.axis('off')
            continue
        ax.imshow(images[i])
        color = '#1a9850' if hits[i] else '#d73027'
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(5)
        parts = [f'#{i + 1}', 'hit' if hits[i] else 'miss']
        if labels is not None:
            parts.append(str(labels[i]))
        if scores is not None:
            parts.append(f'{scores[i]:.3f}')
        ax.set_xlabel(' '.join(parts), color=color, fontproperties=font)
    fig.suptitle(caption, fontproperties=font, fontsize=13)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=80)
    plt.close(fig)
    return out_file


def render_zeroshot_examples(images: Sequence[np.ndarray], top_names: Sequence[Sequence[str]],
                             top_scores: Sequence[Sequence[float]], gt_names: Sequence[str], out_file: str,
                             font_path: Optional[str] = None) -> str:
    """Save one PNG: each image with its top-k class names and probabilities; correct top-1 framed
    green, wrong red, the ground-truth name in the title."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    from .fonts import cjk_font_properties

    font = cjk_font_properties(font_path)
    n = max(1, len(images))
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 3.6), squeeze=False)
    for ax, img, names, scores, gt in zip(axes[0], images, top_names, top_scores, gt_names):
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        color = '#1a9850' if names and names[0] == gt else '#d73027'
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(5)
        ax.set_title(f'gt: {gt}', fontproperties=font, fontsize=10)
        ax.set_xlabel('\n'.join(f'{name} {score:.2f}' for name, score in zip(names, scores)),
                      fontproperties=font, fontsize=9, color=color)
    for ax in axes[0][len(images):]:
        ax.axis('off')
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=80)
    plt.close(fig)
    return out_file
