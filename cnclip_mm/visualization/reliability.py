"""Reliability diagram: predicted probability against the observed share of matching pairs."""
from typing import Dict

import numpy as np

from cnclip_mm.evaluation.calibration import ECE_BINS, expected_calibration_error, reliability_bins


def plot_reliability(curves: Dict[str, np.ndarray], labels: np.ndarray, out_file: str, bins: int = ECE_BINS,
                     title: str = 'Reliability') -> str:
    """Write a PNG: per curve (e.g. ``{'raw cosine': s, 'calibrated': p}``) the share of matches per
    probability bin against the diagonal, its expected calibration error in the legend, pair counts below.

    Drawn on a figure of its own with the Agg canvas, so no pyplot backend or global state is touched.

    Returns:
        ``out_file``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 6), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=(3, 1)))
    top.plot([0, 1], [0, 1], color='0.6', linestyle='--', linewidth=1, label='perfect')
    width = 1.0 / bins
    for i, (name, probs) in enumerate(curves.items()):
        table = reliability_bins(probs, labels, bins)
        used = table['counts'] > 0
        ece = expected_calibration_error(probs, labels, bins)
        top.plot(table['confidence'][used], table['accuracy'][used], marker='o', markersize=4,
                 label=f'{name} (ECE {ece:.3f})')
        offset = (i - (len(curves) - 1) / 2) * width / max(len(curves), 1)
        bottom.bar(table['edges'][:-1] + width / 2 + offset, table['counts'], width=width / max(len(curves), 1),
                   label=name)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel='share of matching pairs', title=title)
    top.legend(loc='upper left', fontsize=8)
    bottom.set(xlabel='predicted probability (raw cosine clipped to [0, 1])', ylabel='pairs')
    bottom.set_yscale('log')
    fig.tight_layout()
    fig.savefig(out_file)
    return out_file
