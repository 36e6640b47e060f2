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

import numpy as np


class BatchStream:
    """The endless index stream of Keras 2's Iterator over `n` samples, seeded, with batch k a pure function of k
    (`indices_of`): pass p = k // ceil(n / batch_size) is `default_rng([seed, p])`'s permutation, so a resumed run,
    a second phase or a prefetching data loader asks for batch k and gets the same samples."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True):
        if n < 1 or batch_size < 1:
            raise ValueError(f"cnnlab bug: a stream needs samples and a batch size (n={n}, batch_size={batch_size})")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.per_pass = -(-n // batch_size)  # ceil: the pass's last batch is the remainder
        self._pass, self._order = None, None
        self.batches = 0  # batches drawn by next_indices

    def _order_of(self, p: int) -> np.ndarray:
        if self._pass != p:
            self._pass = p
            self._order = (
                np.random.default_rng([self.seed, p]).permutation(self.n) if self.shuffle else np.arange(self.n)
            )
        return self._order

    def indices_of(self, k: int) -> np.ndarray:
        """The sample indices of batch k of the stream (k = 0, 1, ...)."""
        p, j = divmod(k, self.per_pass)
        return self._order_of(p)[j * self.batch_size : min((j + 1) * self.batch_size, self.n)]

    def next_indices(self) -> np.ndarray:
        idx = self.indices_of(self.batches)
        self.batches += 1
        return idx


def samples_per_epoch(n: int, batch_size: int, steps: int) -> int:
    """Samples in `steps` batches from the start of a stream over `n` (the first epoch's; later epochs may
    straddle a pass's short last batch differently): 100 × 32 from 2,000 → 3,184 (one short batch of 16)."""
    s = BatchStream(n, batch_size, seed=0, shuffle=False)
    return sum(len(s.next_indices()) for _ in range(steps))
