"""Alternating multi-dataset batches: which images make up the batch of every iteration.

The paper trains on datasets of very different sizes (COCO 118K images, LocNar-OID 504K) by taking
whole batches from each dataset in turn. :class:`AlternatingBatchSchedule` fixes, for every global
iteration ``i``:

* the dataset: ``turns[i % len(turns)]``, where ``turns`` repeats dataset ``d`` ``ratio[d]`` times
  (``DATALOADER.ALTERNATE_RATIO``; one batch each by default), whatever the dataset sizes;
* the images: the ``k``-th batch drawn from dataset ``d`` takes positions ``[k*T, (k+1)*T)`` of that
  dataset's infinite stream of seeded shuffled epochs (``T`` = total batch size over all processes),
  and process ``r`` takes its own slice ``[k*T + r*B, k*T + (r+1)*B)`` of it.

Everything is a pure function of ``(seed, iteration, rank)``: any data-loader worker can produce any
iteration's batch without talking to the others, a resumed run can start at its iteration, and all
processes agree on the dataset of each iteration (so one optimizer step never mixes datasets).
"""
from __future__ import annotations

import collections
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["InfiniteShuffledStream", "AlternatingBatchSchedule"]


class InfiniteShuffledStream:
    """Random access into ``perm_0 + perm_1 + ...``: seeded permutations of ``range(size)`` per epoch."""

    def __init__(self, size: int, seed: int, shuffle: bool = True, cache_epochs: int = 2):
        if size <= 0:
            raise ValueError(f"cannot sample from an empty dataset (size {size})")
        self.size = int(size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self._cache: "collections.OrderedDict[int, np.ndarray]" = collections.OrderedDict()
        self._cache_epochs = cache_epochs

    def _epoch(self, epoch: int) -> np.ndarray:
        perm = self._cache.get(epoch)
        if perm is None:
            perm = (np.random.default_rng([self.seed, epoch]).permutation(self.size) if self.shuffle
                    else np.arange(self.size))
            self._cache[epoch] = perm
            while len(self._cache) > self._cache_epochs:
                self._cache.popitem(last=False)
        return perm

    def __getitem__(self, position: int) -> int:
        if position < 0:
            raise IndexError(f"stream positions start at 0, got {position}")
        epoch, offset = divmod(int(position), self.size)
        return int(self._epoch(epoch)[offset])

    def slice(self, start: int, stop: int) -> List[int]:
        return [self[p] for p in range(start, stop)]


class AlternatingBatchSchedule:
    """The dataset and the image indices of every iteration (see the module docstring)."""

    def __init__(self, dataset_sizes: Sequence[int], batch_size: int, seed: int, ratio: Sequence[int] = (),
                 rank: int = 0, world_size: int = 1, shuffle: bool = True):
        """
        Args:
            dataset_sizes: number of images of each dataset.
            batch_size: images per iteration *per process*.
            seed: shared by all processes (different seeds would make ranks disagree on the order).
            ratio: batches per turn of each dataset (empty: one each).
            rank, world_size: this process and the number of processes.
        """
        if not dataset_sizes:
            raise ValueError("no datasets to alternate between")
        ratio = list(ratio) or [1] * len(dataset_sizes)
        if len(ratio) != len(dataset_sizes) or any(int(r) != r or r < 1 for r in ratio):
            raise ValueError(f"DATALOADER.ALTERNATE_RATIO must hold one positive integer per training dataset "
                             f"({len(dataset_sizes)}), got {list(ratio)}")
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.turns: List[int] = [d for d, r in enumerate(ratio) for _ in range(int(r))]
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.streams = [InfiniteShuffledStream(n, seed + 1000003 * d, shuffle) for d, n in enumerate(dataset_sizes)]
        # for each position of the turn cycle: how many earlier positions belong to the same dataset
        self._earlier: List[int] = [self.turns[:p].count(d) for p, d in enumerate(self.turns)]
        self._per_cycle: Dict[int, int] = collections.Counter(self.turns)

    def dataset_at(self, iteration: int) -> int:
        return self.turns[iteration % len(self.turns)]

    def batch_number(self, iteration: int) -> int:
        """How many batches the dataset of ``iteration`` gave before it."""
        cycle, pos = divmod(iteration, len(self.turns))
        return cycle * self._per_cycle[self.turns[pos]] + self._earlier[pos]

    def indices_at(self, iteration: int) -> Tuple[int, List[int]]:
        """(dataset index, this process's image indices in that dataset) of ``iteration``."""
        if iteration < 0:
            raise ValueError(f"iterations start at 0, got {iteration}")
        d = self.dataset_at(iteration)
        start = (self.batch_number(iteration) * self.world_size + self.rank) * self.batch_size
        return d, self.streams[d].slice(start, start + self.batch_size)
