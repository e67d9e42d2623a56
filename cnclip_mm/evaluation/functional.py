"""Chunked retrieval computations on features: ranks of the best positive and top-k.

Everything here works on blocks of query rows so that the full similarity matrix never exists:
30k images x 150k texts would be 18 GB in fp32, one block of ``chunk_rows`` rows is a few hundred MB.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

# Elements of one similarity block (rows x gallery). 2**25 fp32 = 128 MiB plus two bool masks of 32 MiB.
DEFAULT_BLOCK_ELEMS = 2**25


def _rows_per_chunk(num_cols: int, chunk_size: Optional[int]) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        return int(chunk_size)
    return max(1, DEFAULT_BLOCK_ELEMS // max(1, num_cols))


def _block_fn(query: Optional[Tensor], gallery: Optional[Tensor],
              similarity: Optional[Tensor], device: torch.device) -> Tuple[Callable, int, int]:
    """Return ``block(start, end) -> sims[end-start, num_gallery]`` and the two sizes."""
    if similarity is not None:
        if query is not None or gallery is not None:
            raise ValueError('give either features or a similarity matrix, not both')
        if similarity.dim() != 2:
            raise ValueError(f'similarity must be 2-D [queries, gallery], got {tuple(similarity.shape)}')
        return (lambda s, e: similarity[s:e].to(device).float()), similarity.shape[0], similarity.shape[1]
    if query is None or gallery is None:
        raise ValueError('query and gallery features are both required')
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f'features must be [N, D] with the same D, got {tuple(query.shape)} and '
                         f'{tuple(gallery.shape)}')
    gallery_dev = gallery.to(device)
    if gallery_dev.device.type == 'cpu' and gallery_dev.dtype in (torch.float16, torch.bfloat16):
        gallery_dev = gallery_dev.float()  # half matmul on CPU is slow and sometimes unsupported

    def block(s: int, e: int) -> Tensor:
        return (query[s:e].to(device=device, dtype=gallery_dev.dtype) @ gallery_dev.T).float()

    return block, query.shape[0], gallery.shape[0]


def retrieval_ranks(
    query: Optional[Tensor] = None,
    gallery: Optional[Tensor] = None,
    positives: Sequence[Sequence[int]] = (),
    *,
    similarity: Optional[Tensor] = None,
    reverse: bool = True,
    chunk_size: Optional[int] = None,
    device: Optional[str] = None,
) -> Tuple[Tensor, Optional[Tensor]]:
    """Rank of the best positive for every query, and for every gallery item in the reverse direction.

    The rank is the number of non-positive items scoring at least as high as the best positive
    (0 = hit at 1). Ties count against the query, so a constant score gives rank = #negatives rather
    than a value that depends on the data order. Items without any positive get rank ``-1``.

    Args:
        query: [Q, D] query features (e.g. texts).
        gallery: [G, D] gallery features (e.g. images).
        positives: for each query, the gallery indices that are correct answers.
        similarity: a precomputed [Q, G] score matrix instead of features.
        reverse: also rank queries for every gallery item (image->text). Its positives are the
            queries that list it. Costs a second pass over the blocks.
        chunk_size: query rows per block; default keeps a block near 2**25 scores.
        device: where to compute; default the query's device.

    Returns:
        ``(query_ranks [Q], gallery_ranks [G] or None)`` as LongTensors on the CPU.
    """
    dev = torch.device(device) if device is not None else (
        similarity.device if similarity is not None else query.device)
    block, num_q, num_g = _block_fn(query, gallery, similarity, dev)
    if len(positives) != num_q:
        raise ValueError(f'positives has {len(positives)} entries for {num_q} queries')
    pos_rows: List[int] = []
    pos_cols: List[int] = []
    for i, cols in enumerate(positives):
        for c in sorted({int(c) for c in cols}):  # a repeated positive must not count twice
            if not 0 <= int(c) < num_g:
                raise IndexError(f'positive {c} of query {i} is outside the gallery of {num_g}')
            pos_rows.append(i)
            pos_cols.append(int(c))
    rows_t = torch.tensor(pos_rows, dtype=torch.long)
    cols_t = torch.tensor(pos_cols, dtype=torch.long)
    step = _rows_per_chunk(num_g, chunk_size)
    # The first pair index of each chunk: pairs are sorted by query because we built them in order.
    starts = list(range(0, num_q, step))
    bounds = torch.searchsorted(rows_t, torch.tensor(starts + [num_q], dtype=torch.long)).tolist()

    query_ranks = torch.full((num_q,), -1, dtype=torch.long)
    best_gallery = torch.full((num_g,), float('-inf'), device=dev)

    def chunk_pairs(ci: int, s: int) -> Tuple[Tensor, Tensor]:
        return rows_t[bounds[ci]:bounds[ci + 1]].to(dev) - s, cols_t[bounds[ci]:bounds[ci + 1]].to(dev)

    # Count "items scoring >= the best positive" over the whole block, then take the positives that
    # reach that score back out: no [rows, gallery] mask is ever built.
    for ci, s in enumerate(starts):
        e = min(s + step, num_q)
        sims = block(s, e)
        r, c = chunk_pairs(ci, s)
        pos_scores = sims[r, c]
        best = torch.full((e - s,), float('-inf'), device=dev).scatter_reduce_(
            0, r, pos_scores, reduce='amax', include_self=True)
        at_least = (sims >= best[:, None]).sum(dim=1)
        positives_at_least = torch.zeros(e - s, dtype=torch.long, device=dev).scatter_add_(
            0, r, (pos_scores >= best[r]).long())
        has_pos = torch.zeros(e - s, dtype=torch.bool, device=dev).index_fill_(0, r, True)
        counts = at_least - positives_at_least
        query_ranks[s:e] = torch.where(has_pos, counts, torch.full_like(counts, -1)).cpu()
        if reverse and len(c):
            best_gallery.scatter_reduce_(0, c, pos_scores, reduce='amax', include_self=True)
        del sims

    if not reverse:
        return query_ranks, None
    gallery_counts = torch.zeros(num_g, dtype=torch.long, device=dev)
    for ci, s in enumerate(starts):
        e = min(s + step, num_q)
        sims = block(s, e)
        r, c = chunk_pairs(ci, s)
        gallery_counts += (sims >= best_gallery[None, :]).sum(dim=0)
        gallery_counts.scatter_add_(0, c, -(sims[r, c] >= best_gallery[c]).long())
        del sims
    has_pos = torch.zeros(num_g, dtype=torch.bool, device=dev).index_fill_(0, cols_t.to(dev), True)
    gallery_ranks = torch.where(has_pos, gallery_counts, torch.full_like(gallery_counts, -1)).cpu()
    return query_ranks, gallery_ranks


def recall_at_k(ranks: Tensor, topk: Sequence[int],
                count_missing: bool = False) -> Tuple[List[float], int]:
    """R@k in percent; items without a positive have rank -1.

    Args:
        ranks: per-item rank of the best positive, -1 for items without one.
        topk: the k values.
        count_missing: count items without a positive as misses (official), instead of leaving them out.

    Returns:
        ``([R@k for k in topk], number of items without a positive)``.
    """
    valid = ranks >= 0
    missing = int(ranks.numel() - int(valid.sum()))
    n = ranks.numel() if count_missing else int(valid.sum())
    if n == 0:
        return [float('nan')] * len(topk), missing
    kept = ranks[valid]
    return [100.0 * float((kept < k).sum()) / n for k in topk], missing


def chunked_topk(
    query: Tensor,
    gallery: Tensor,
    k: int,
    chunk_size: Optional[int] = None,
    device: Optional[str] = None,
    progress: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Top-k gallery items for every query without materialising the full score matrix.

    Ties keep the lower gallery index first (a stable sort of each block's candidates), so the
    output does not depend on the chunk size.

    Returns:
        ``(scores [Q, k], indices [Q, k])`` on the CPU, k clipped to the gallery size.
    """
    dev = torch.device(device) if device is not None else query.device
    block, num_q, num_g = _block_fn(query, gallery, None, dev)
    k = min(int(k), num_g)
    step = _rows_per_chunk(num_g, chunk_size)
    scores = torch.empty((num_q, k), dtype=torch.float32)
    indices = torch.empty((num_q, k), dtype=torch.long)
    starts = range(0, num_q, step)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc='top-k', unit='chunk')
    for s in starts:
        e = min(s + step, num_q)
        sims = block(s, e)
        # topk may order ties arbitrarily; take a margin of candidates and sort them stably by
        # (score desc, index asc) so the answer is unique.
        cand = min(num_g, k * 2 + 8)
        top_s, top_i = sims.topk(cand, dim=1)
        kth = top_s[:, k - 1:k]
        if bool((top_s[:, -1:] >= kth).any()) and cand < num_g:
            # ties reach past the candidate margin: fall back to a full stable sort for this block
            top_s, top_i = torch.sort(sims, dim=1, descending=True, stable=True)
        else:
            order = torch.argsort(top_i, dim=1)
            top_s, top_i = top_s.gather(1, order), top_i.gather(1, order)
            order = torch.argsort(top_s, dim=1, descending=True, stable=True)
            top_s, top_i = top_s.gather(1, order), top_i.gather(1, order)
        scores[s:e] = top_s[:, :k].cpu()
        indices[s:e] = top_i[:, :k].cpu()
    return scores, indices
