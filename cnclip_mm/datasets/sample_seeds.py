"""Per-sample random seeds for map-style training data, and a sampler that can start mid-epoch.

Augmentations draw from Python's ``random``, ``numpy.random`` and torch's CPU generator. Left to one stream per
DataLoader worker, a sample's augmentation depends on which worker fetched it and on everything that worker did
before: other worker counts give other numbers, a persistent worker carries its stream across epochs, and a
resume can only reproduce it by decoding again every batch trained before the checkpoint. Here each fetch runs
with the three generators seeded from ``(seed, epoch, index)``, so a resume may start the epoch at the sampler.
"""
import itertools
import random
from typing import Iterator, List, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 32-bit seed of sample ``index`` in ``epoch`` (a hash: neighbouring samples get unrelated streams)."""
    return int(np.random.SeedSequence([seed % 2 ** 32, epoch, index]).generate_state(1)[0])


class SeededIndexSampler(Sampler):
    """Yields ``(index, seed)`` for each index of ``sampler``, and can skip the start of its next pass.

    Args:
        sampler: The epoch's index order (``DefaultSampler`` and the like; ``set_epoch`` is passed on).
        seed: Base of every sample's seed.
    """

    def __init__(self, sampler: Sampler, seed: int) -> None:
        self.sampler = sampler
        self.seed = seed
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)

    def skip(self, num_samples: int) -> None:
        """Start the next pass after its first ``num_samples`` indices (they are never fetched)."""
        self._skip = num_samples

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        skip, self._skip = self._skip, 0
        for index in itertools.islice(iter(self.sampler), skip, None):
            yield index, sample_seed(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return len(self.sampler)


class SeededSamples(Dataset):
    """``dataset`` fetched by the ``(index, seed)`` pairs of :class:`SeededIndexSampler`: each fetch (its
    pipeline and any re-draw after a skipped bad sample) runs with ``random``, ``numpy.random`` and torch's
    CPU generator seeded from ``seed``; the caller's generator states are put back afterwards.

    Args:
        dataset: The map-style dataset (its attributes stay readable through this view).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: Tuple[int, int]):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: List[Tuple[int, int]]) -> list:
        """A batch of fetches (the DataLoader's batched call): the caller's generator states are saved and
        put back once per batch, the costly part (NumPy's state is 624 words each way)."""
        python_state, numpy_state = random.getstate(), np.random.get_state()
        samples = []
        with torch.random.fork_rng(devices=[]):
            try:
                for index, seed in keys:
                    random.seed(seed)
                    np.random.seed(seed)
                    torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA streams stay
                    samples.append(self.dataset[index])
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)
        return samples

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        if name == 'dataset':  # not yet set (unpickling in a worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)
