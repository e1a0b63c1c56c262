"""Aspect-ratio buckets and the batch order: which samples train together, on which rank.

Every bucket is a ``(width, height)`` whose sides are multiples of ``step`` and whose
area is at most ``resolution²``; an image goes to the bucket with the nearest aspect
ratio (log scale) and is resized to cover it, then cropped.

Batch order (:class:`BucketBatchSampler`): for epoch ``e`` the samples of each bucket
are shuffled with a generator seeded by ``(seed, e)`` and cut into *global* batches of
``batch_size × world_size`` (the last one of a bucket filled up by wrapping around, as
``DistributedSampler`` pads); the global batches are shuffled too. Rank ``r`` takes
slice ``[r·batch_size, (r+1)·batch_size)`` of each global batch, so a run on ``N``
processes sees exactly the samples a single process with the ``N``-times batch sees,
and the position in the stream is one integer (the micro-batch count) that a resumed
run can jump to.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import HumanSDError


def make_buckets(resolution: int, step: int = 64, max_aspect: float = 2.0) -> list[tuple[int, int]]:
    """Bucket sizes ``(width, height)``, sides multiples of ``step``, area ≤ ``resolution²``.

    For each width from ``step`` up, the tallest height fitting the area; buckets whose
    aspect ratio exceeds ``max_aspect`` either way are left out. The square bucket
    ``(r, r)`` (``r`` = ``resolution`` rounded down to the step) is always included.
    Sorted by aspect ratio (width / height).
    """
    if resolution < step or step < 1:
        raise HumanSDError(f"buckets: resolution {resolution} must be at least the step {step} (> 0)")
    area = resolution * resolution
    side = resolution // step * step
    sizes = {(side, side)}
    for width in range(step, area // step + 1, step):
        height = area // width // step * step
        if height >= step and max(width / height, height / width) <= max_aspect + 1e-9:
            sizes.add((width, height))
    return sorted(sizes, key=lambda s: (s[0] / s[1], s[0]))


def assign_bucket(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> int:
    """Index of the bucket nearest to ``width/height`` in log aspect ratio (ties: the larger area)."""
    target = math.log(width / height)
    return min(range(len(buckets)),
               key=lambda i: (abs(math.log(buckets[i][0] / buckets[i][1]) - target), -buckets[i][0] * buckets[i][1]))


class BucketBatchSampler:
    """Yields this rank's micro-batches as lists of ``(sample index, epoch)``, forever.

    Args:
        bucket_of: bucket index of each sample.
        batch_size: samples per rank and micro-batch.
        world_size, rank: the process group (1, 0 for a single process).
        seed: base of the per-epoch shuffles.
        start: micro-batches to skip (a resumed run's position).
    """

    def __init__(self, bucket_of: Sequence[int], batch_size: int, world_size: int = 1, rank: int = 0,
                 seed: int = 0, start: int = 0) -> None:
        if not bucket_of:
            raise HumanSDError("the dataset is empty")
        if not 0 <= rank < world_size:
            raise HumanSDError(f"rank {rank} outside a world of {world_size}")
        self.bucket_of = np.asarray(bucket_of, dtype=np.int64)
        self.batch_size, self.world_size, self.rank = batch_size, world_size, rank
        self.seed, self.start = seed, start

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's global batches (each ``[batch_size × world_size]`` sample indices, one bucket)."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for bucket in np.unique(self.bucket_of):
            members = rng.permutation(np.flatnonzero(self.bucket_of == bucket))
            count = math.ceil(len(members) / self.global_batch)
            padded = np.resize(members, count * self.global_batch)  # wraps around to fill the last batch
            batches.extend(padded.reshape(count, self.global_batch))
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def batches_per_epoch(self) -> int:
        return len(self.global_batches(0))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_epoch = self.batches_per_epoch()
        epoch, position = divmod(self.start, per_epoch)
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        while True:
            batches = self.global_batches(epoch)
            for batch in batches[position:]:
                yield [(int(i), epoch) for i in batch[lo:hi]]
            epoch, position = epoch + 1, 0
