"""Batches as Keras 2's `fit_generator(steps_per_epoch=...)` drew them: an endless, reshuffled stream.

Reference: Keras 2.0.8 keras/preprocessing/image.py, `Iterator._flow_index`: a fresh permutation of the n samples
at the start of every pass, consecutive slices of `batch_size`, the pass's last batch the remainder (n mod
batch_size), and the stream carried on across epochs; DLwP listings 5.8 and 5.14 (`steps_per_epoch=100`,
`validation_steps=50`).
Trap: an epoch is `steps_per_epoch` batches, not a pass. The augmented cats-vs-dogs run draws 100 × 32 images an
epoch from 2,000 (10,000 steps in 100 epochs; one pass an epoch would be 6,300), and its 50 validation batches of
32 from 1,000 images score 1,576 of them, 576 twice — the book's val_acc is that mean, not one over 1,000.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class BatchStream:
    """The endless index stream of Keras 2's Iterator over `n` samples, seeded; `skip(k)` fast-forwards k batches
    (a resumed run continues the stream where the interrupted one stood)."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True):
        if n < 1 or batch_size < 1:
            raise ValueError(f"cnnlab bug: a stream needs samples and a batch size (n={n}, batch_size={batch_size})")
        self.n, self.batch_size, self.shuffle = n, batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(n)
        self._start = 0          # where the next batch starts in the current pass
        self.batches = 0         # batches drawn so far

    def next_indices(self) -> np.ndarray:
        if self._start == 0 and self.shuffle:
            self._order = self._rng.permutation(self.n)
        end = min(self._start + self.batch_size, self.n)
        idx = self._order[self._start:end]
        self._start = 0 if end >= self.n else end
        self.batches += 1
        return idx

    def skip(self, k: int) -> None:
        for _ in range(k):
            self.next_indices()

    def batches_of(self, x: np.ndarray, y: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """An endless generator of (x[idx], y[idx]) batches: what `model.fit` takes with `steps_per_epoch`."""
        while True:
            idx = self.next_indices()
            yield x[idx], y[idx]


def samples_per_epoch(n: int, batch_size: int, steps: int) -> int:
    """Samples in `steps` batches from the start of a stream over `n` (the first epoch's; later epochs may
    straddle a pass's short last batch differently): 100 × 32 from 2,000 → 3,184 (one short batch of 16)."""
    s = BatchStream(n, batch_size, seed=0, shuffle=False)
    return sum(len(s.next_indices()) for _ in range(steps))
