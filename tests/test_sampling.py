"""Keras 2's generator sampling (cnnlab.sampling, train.steps_per_epoch) against hand-derived counts."""
from __future__ import annotations

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnnlab.sampling import BatchStream, samples_per_epoch


def test_stream_reshuffles_every_pass_and_ends_a_pass_with_the_remainder():
    # n = 5, batch 2: each pass is [2, 2, 1] samples of a fresh permutation, and the stream runs on
    s = BatchStream(5, 2, seed=3)
    sizes = [len(s.next_indices()) for _ in range(7)]
    assert sizes == [2, 2, 1, 2, 2, 1, 2]
    s = BatchStream(5, 2, seed=3)
    first = np.concatenate([s.next_indices() for _ in range(3)])
    second = np.concatenate([s.next_indices() for _ in range(3)])
    assert sorted(first) == sorted(second) == [0, 1, 2, 3, 4]  # every pass sees each sample once
    assert s.batches == 6


def test_the_books_sample_counts():
    # listing 5.14: 2,000 images, batch 32 → passes of 63 batches (62 × 32 + 16); 100 steps = 2,000 + 37 × 32
    assert samples_per_epoch(2000, 32, 100) == 2000 + 37 * 32 == 3184
    # 100 epochs × 100 steps = 10,000 batches = 158 passes (9,954 batches) + 46 × 32
    assert samples_per_epoch(2000, 32, 10_000) == 158 * 2000 + 46 * 32
    # validation_steps=50 of batch 32 over 1,000 images: 31 × 32 + 8 = 1,000, then 18 × 32 = 576 more
    assert samples_per_epoch(1000, 32, 50) == 1576
    # listing 5.8: 100 steps of 20 over 2,000 is exactly one pass
    assert samples_per_epoch(2000, 20, 100) == 2000


def test_skip_fast_forwards_to_the_same_batches():
    a, b = BatchStream(50, 8, seed=1), BatchStream(50, 8, seed=1)
    for _ in range(11):
        a.next_indices()
    b.skip(11)
    np.testing.assert_array_equal(a.next_indices(), b.next_indices())


def _tiny(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    return x, y


class _Count(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1] += 1


def test_fit_draws_steps_per_epoch_batches_from_one_stream_across_epochs():
    from cnnlab.runner import FitData

    x, y = _tiny()
    splits = SimpleNamespace(x_train=x, y_train=y, x_val=x[:12], y_val=y[:12])
    tr = SimpleNamespace(batch_size=16, steps_per_epoch=3, validation_steps=2)
    data = FitData(splits, tr, seed=1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    count = _Count()
    args, kwargs = data.fit_args(0)
    model.fit(*args, **kwargs, epochs=2, verbose=0, callbacks=[count])
    assert count.batches == [3, 3]
    # 40 samples in batches of 16: passes of [16, 16, 8]; 6 steps = one pass and three more batches
    assert data.train_samples(2) == 40 + 16 + 16 + 8
    assert data.train_stream.batches >= 6 and data.val_stream.batches >= 4


def test_a_run_with_steps_per_epoch_records_what_it_saw(cli, data_dir, tmp_path):
    results = tmp_path / "results"
    code, out, err = cli("--results-dir", results, "run", "mnist", "data.train_subset=300", "data.test_subset=100",
                         "train.epochs=2", "train.batch_size=32", "train.steps_per_epoch=7",
                         "train.validation_steps=3", "--data-dir", data_dir, "--verbose", "0")
    assert code == 0, err
    (run,) = [p for p in (results / "mnist").iterdir() if p.is_dir()]
    m = json.loads((run / "metrics.json").read_text())
    # 300 images, batch 32: passes of 9 × 32 + 12; 14 steps = 10 batches (300) + 4 × 32
    assert m["train_samples_seen"] == 300 + 4 * 32
    assert m["epochs_run"] == 2


@pytest.mark.parametrize("override, message", [
    ("train.steps_per_epoch=0", "train.steps_per_epoch: expected a positive number of batches"),
    ("train.validation_steps=5", "train.validation_steps: belongs to a generator's epoch: set steps_per_epoch"),
])
def test_bad_steps_are_one_line(cli, override, message):
    code, out, err = cli("params", "mnist", override)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
