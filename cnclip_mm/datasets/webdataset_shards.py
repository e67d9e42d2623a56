"""Image-text pairs streamed from WebDataset tar shards in img2dataset's layout.

Each sample is ``KEY.jpg`` (or ``.jpeg`` / ``.png`` / ``.webp``) + ``KEY.txt`` (the caption) and an
optional ``KEY.json`` with ``text_id`` / ``image_id`` (the key stands in for missing ids). Shards are
split by rank, then by DataLoader worker; the stream of each worker is a deterministic function of
``(seed, epoch, rank, worker)``, which is what lets :class:`~cnclip_mm.engine.StreamTrainLoop`
resume mid-epoch by skipping exactly the batches already trained.
"""
import glob
import itertools
import json
import multiprocessing as mp
import os.path as osp
import random
import tarfile
from typing import Iterator, List, Optional, Sequence, Union

import torch.utils.data
import webdataset as wds
from mmengine.dataset import Compose
from mmengine.dist import get_dist_info

from cnclip_mm.registry import DATASETS

from .bad_samples import BadSampleError, BadSampleLog

IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp')
MANIFEST = 'shards.json'  # shard file name -> sample count, written by the converter


def expand_shards(shards: Union[str, Sequence[str]], data_root: str = '') -> List[str]:
    """Local shard paths from brace patterns (``{00000..00127}``), globs, or a list of either.

    Raises:
        FileNotFoundError: naming the pattern that matched no file.
    """
    patterns = [shards] if isinstance(shards, str) else list(shards)
    paths = []
    for pattern in patterns:
        for path in wds.shardlists.expand_urls(osp.join(data_root, pattern)):
            found = sorted(glob.glob(path))  # a plain path matches itself if it exists
            if not found:
                raise FileNotFoundError(f'WebDatasetImageText: no shard file matches {path!r}')
            paths += found
    if not paths:
        raise FileNotFoundError(f'WebDatasetImageText: no shards in {shards!r}')
    return paths


def count_samples(path: str) -> int:
    """Samples in one shard: from ``shards.json`` beside it (the converter's), else its tar index."""
    manifest = osp.join(osp.dirname(path), MANIFEST)
    if osp.isfile(manifest):
        with open(manifest) as f:
            sizes = json.load(f)
        if osp.basename(path) in sizes:
            return int(sizes[osp.basename(path)])
    with tarfile.open(path) as tar:
        return len({wds.tariterators.base_plus_ext(name)[0] for name in tar.getnames()} - {None})


def worker_skip(batches_done: int, worker: int, num_workers: int) -> int:
    """Batches of ``worker`` among the first ``batches_done`` (DataLoader takes workers round-robin)."""
    return len(range(worker, batches_done, num_workers))


@DATASETS.register_module()
class WebDatasetImageText(torch.utils.data.IterableDataset):
    """Training pairs from tar shards (an ``IterableDataset``: set ``sampler=None`` in the loader).

    Non-resampled mode (default): each epoch reads every shard once; the shard order is shuffled
    with ``seed + epoch`` (same on all ranks), rank ``r`` takes shards ``r::world_size`` and worker
    ``w`` of it takes ``w::num_workers`` of those. Every sample is seen exactly once per epoch when
    the shards hold equal sample counts and their number divides by ``world_size x num_workers``
    (``tools/data/convert_to_shards.py`` writes such shards); otherwise the epoch ends on every rank
    when the first rank runs out (``StreamTrainLoop``), dropping the others' tails.

    Resampled mode (``resampled=True``, open_clip's ``--dataset-resampled``): every worker draws
    shards with replacement, forever; ``epoch_length`` iterations make an epoch.

    Args:
        shards: Path, glob or brace pattern (or a list of them), relative to ``data_root``.
        data_root: Folder the shard patterns are relative to.
        pipeline: Transforms, the same as the other training datasets (``LoadImage`` decodes
            ``img_bytes``).
        on_bad_sample: ``'error'`` raises naming shard and key; ``'skip'`` skips and counts.
        shuffle_buffer: Samples held in the shuffle buffer per worker (``<= 1``: no shuffling).
        shuffle_shards: Shuffle the shard order each epoch (non-resampled mode).
        resampled: Draw shards with replacement (infinite stream).
        epoch_length: Iterations per epoch; required with ``resampled=True``.
        seed: Base of every random choice (shard order, resampling, shuffle buffer).
    """

    def __init__(self, shards: Union[str, Sequence[str]], data_root: str = '',
                 pipeline: Sequence = (), on_bad_sample: str = 'error', shuffle_buffer: int = 1000,
                 shuffle_shards: bool = True, resampled: bool = False,
                 epoch_length: Optional[int] = None, seed: int = 0) -> None:
        if resampled and not epoch_length:
            raise ValueError('WebDatasetImageText: resampled=True needs epoch_length (iterations per epoch)')
        self.urls = expand_shards(shards, data_root)
        self.pipeline = Compose(pipeline)
        self.bad_samples = BadSampleLog(on_bad_sample)
        self.shuffle_buffer = shuffle_buffer
        self.shuffle_shards = shuffle_shards
        self.resampled = resampled
        self.epoch_length = epoch_length
        self.seed = seed
        self.rank, self.world_size = get_dist_info()  # workers have no process group: keep it here
        # epoch, batches already done in it, batch size: shared so (persistent) workers see updates.
        self._position = mp.RawArray('q', 3)
        self.metainfo = {}
        self._len = None
        self.test_mode = False

    @property
    def name(self) -> str:
        return f'{type(self).__name__}({len(self.urls)} shards)'

    def __len__(self) -> int:
        """Samples per epoch on this rank (mmengine sizes epoch-based schedules with it).

        Resampled: ``epoch_length x batch_size``. Otherwise the samples of this rank's shards (in a
        shuffled order the count differs per epoch by at most a shard; epoch 0 is counted).
        """
        if self.resampled:
            return self.epoch_length * max(1, self._position[2])
        if self._len is None:
            self._len = sum(count_samples(u) for u in self.shards_for(0, 0, 1))
        return self._len

    def set_position(self, epoch: int, batches_done: int = 0, batch_size: int = 0) -> None:
        """Where the next iteration starts: ``epoch``, after ``batches_done`` batches of ``batch_size``."""
        self._position[:] = [epoch, batches_done, batch_size]

    def shards_for(self, epoch: int, worker: int, num_workers: int) -> Iterator[str]:
        """The shards one worker of this rank reads in ``epoch`` (infinite when resampled)."""
        if self.resampled:
            rng = random.Random(f'{self.seed}/{epoch}/{self.rank}/{worker}')
            return (rng.choice(self.urls) for _ in itertools.count())
        order = list(self.urls)
        if self.shuffle_shards:
            random.Random(self.seed + epoch).shuffle(order)
        return iter(order[self.rank::self.world_size][worker::num_workers])

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch, batches_done, batch_size = self._position[:]
        # DataLoader takes batches from workers round-robin starting at worker 0, so after
        # ``batches_done`` batches worker w continues the stream worker (w + batches_done) had.
        role = (worker + batches_done) % num_workers
        shards = self.shards_for(epoch, role, num_workers)
        samples = wds.tariterators.tarfile_samples(({'url': u} for u in shards), handler=self._tar_error)
        if self.shuffle_buffer > 1:
            rng = random.Random(f'buffer/{self.seed}/{epoch}/{self.rank}/{role}')
            samples = wds.filters._shuffle(samples, bufsize=self.shuffle_buffer,
                                           initial=self.shuffle_buffer, rng=rng)
        # Resume: drop the raw samples of that stream's batches already trained (no decoding).
        skip = worker_skip(batches_done, role, num_workers) * batch_size
        for sample in itertools.islice(samples, skip, None):
            item = self._prepare(sample)
            if item is not None:
                yield item

    def _tar_error(self, exn: Exception) -> bool:
        """webdataset's handler: a broken tar member or shard raises or is counted (continue)."""
        self.bad_samples.handle('tar shard', f'{type(exn).__name__}: {exn}')
        return True

    def _prepare(self, sample: dict) -> Optional[dict]:
        where = f'{sample.get("__url__")} key {sample.get("__key__")}'
        try:
            return self.pipeline(self._parse(sample, where))
        except BadSampleError as err:
            if self.bad_samples.policy == 'error':
                raise BadSampleError(f'{self.name}: {err}') from err
            self.bad_samples.record(str(err))
            return None

    @staticmethod
    def _parse(sample: dict, where: str) -> dict:
        image = next((sample[ext] for ext in IMAGE_EXTS if ext in sample), None)
        if image is None or 'txt' not in sample:
            raise BadSampleError(f'{where}: needs an image ({"/".join(IMAGE_EXTS)}) and a .txt caption, '
                                 f'has {sorted(k for k in sample if not k.startswith("__"))}')
        try:
            text = sample['txt'].decode('utf-8').strip()
            meta = json.loads(sample['json']) if 'json' in sample else {}
        except (UnicodeDecodeError, ValueError) as err:
            raise BadSampleError(f'{where}: unreadable caption or json ({err})') from err
        if not text:
            raise BadSampleError(f'{where}: empty caption')
        if not isinstance(meta, dict):
            raise BadSampleError(f'{where}: .json must hold an object, got {type(meta).__name__}')
        key = sample['__key__']
        return dict(img_bytes=image, text=text, image_id=meta.get('image_id', key),
                    text_id=meta.get('text_id', key), source=where)
