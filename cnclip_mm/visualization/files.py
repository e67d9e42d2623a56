"""Picture file names that never overwrite: each call numbers its pictures after those already there."""
import os
import os.path as osp
import re
from typing import List, Sequence

NUMBERED = re.compile(r'^(\d+)_.*\.png$')


def numbered_paths(folder: str, stems: Sequence[str]) -> List[str]:
    """``folder/NNNN_stem.png`` for each stem, numbered on from the highest ``NNNN_*.png`` in ``folder``
    (0 in an empty or missing folder), so a second call keeps the first call's pictures."""
    taken = [int(m.group(1)) for m in map(NUMBERED.match, os.listdir(folder) if osp.isdir(folder) else [])
             if m]
    start = max(taken) + 1 if taken else 0
    return [osp.join(folder, f'{start + i:04d}_{stem}.png') for i, stem in enumerate(stems)]
