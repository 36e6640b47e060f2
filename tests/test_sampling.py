"""Keras 2's generator sampling (cnnlab.sampling, train.steps_per_epoch) against hand-derived counts."""

from __future__ import annotations

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cnnlab.train.sampling import BatchStream, samples_per_epoch


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


def _tiny(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    return x, y


def test_batch_k_is_a_pure_function_of_k():
    a, b = BatchStream(50, 8, seed=1), BatchStream(50, 8, seed=1)
    for _ in range(11):
        a.next_indices()
    np.testing.assert_array_equal(a.next_indices(), b.indices_of(11))  # 7 batches a pass: pass 1, batch 4
    np.testing.assert_array_equal(b.indices_of(3), BatchStream(50, 8, seed=1).indices_of(3))
    assert not np.array_equal(BatchStream(50, 8, seed=2).indices_of(0), b.indices_of(0))


class _Record(keras.callbacks.Callback):
    """The validation loss of a model that never changes (lr = 0): it moves only if the validation batches do."""

    def __init__(self):
        super().__init__()
        self.val_losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.val_losses.append(round(float(logs["val_loss"]), 6))


def _fit(data, epochs_done, epochs):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, kernel_initializer="ones")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    args, kwargs, callbacks = data.fit_args(epochs_done, epochs)
    seen = []

    class Seen(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    record = _Record()
    model.fit(
        *args,
        **kwargs,
        initial_epoch=epochs_done,
        epochs=epochs_done + epochs,
        verbose=0,
        callbacks=[*callbacks, record, Seen()],
    )
    return record.val_losses, len(seen)


def test_fit_trains_on_the_stream_and_validates_on_each_epochs_own_batches():
    from cnnlab.train.runner import FitData

    x, y = _tiny(40)
    splits = SimpleNamespace(x_train=x, y_train=y, x_val=x[:12] * 3, y_val=y[:12])
    tr = SimpleNamespace(batch_size=4, steps_per_epoch=3, validation_steps=2)
    data = FitData(splits, tr, seed=1)
    val_losses, steps = _fit(data, 0, 3)
    assert steps == 9
    # 12 validation samples in batches of 4: passes of 3 batches; epoch e scores stream batches 2e, 2e + 1, so the
    # three epochs see different samples (a generator would have replayed its first two batches every epoch)
    assert len(set(val_losses)) == 3
    # 40 samples, batch 4: passes of 10 batches; 6 steps are batches 0-5 of pass 0
    assert data.train_samples(2) == 6 * 4
    args, _, _ = data.fit_args(0, 3)
    np.testing.assert_array_equal(args[0][4][0], x[data.train_stream.indices_of(4)])


def test_a_resumed_phase_continues_the_same_stream():
    from cnnlab.train.runner import FitData

    x, y = _tiny(40)
    splits = SimpleNamespace(x_train=x, y_train=y, x_val=x[:12] * 3, y_val=y[:12])
    tr = SimpleNamespace(batch_size=4, steps_per_epoch=3, validation_steps=2)
    whole, _ = _fit(FitData(splits, tr, seed=1), 0, 3)
    # epochs 0-1, then a second fit() starting at epoch 2 (a later phase or a resumed run): the same batches
    first, _ = _fit(FitData(splits, tr, seed=1), 0, 2)
    data = FitData(splits, tr, seed=1)
    rest, _ = _fit(data, 2, 1)
    assert first + rest == whole
    args, _, callbacks = data.fit_args(2, 1)
    callbacks[0].on_epoch_begin(2)
    np.testing.assert_array_equal(args[0][0][0], x[data.train_stream.indices_of(6)])
    # BackupAndRestore resuming a phase that began at epoch 0 trains from epoch 2: its first batch is batch 6 too
    args, _, callbacks = data.fit_args(0, 3)
    callbacks[0].on_epoch_begin(2)
    np.testing.assert_array_equal(args[0][0][0], x[data.train_stream.indices_of(6)])


def test_a_run_with_steps_per_epoch_records_what_it_saw(cli, data_dir, tmp_path):
    results = tmp_path / "results"
    code, out, err = cli(
        "--results-dir",
        results,
        "run",
        "mnist",
        "data.train_subset=300",
        "data.test_subset=100",
        "train.epochs=2",
        "train.batch_size=32",
        "train.steps_per_epoch=7",
        "train.validation_steps=3",
        "--data-dir",
        data_dir,
        "--verbose",
        "0",
    )
    assert code == 0, err
    (run,) = [p for p in (results / "mnist").iterdir() if p.is_dir()]
    m = json.loads((run / "metrics.json").read_text())
    # 300 images, batch 32: passes of 9 × 32 + 12; 14 steps = 10 batches (300) + 4 × 32
    assert m["train_samples_seen"] == 300 + 4 * 32
    assert m["epochs_run"] == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.steps_per_epoch=0", "train.steps_per_epoch: expected a positive number of batches"),
        ("train.validation_steps=5", "train.validation_steps: belongs to a generator's epoch: set steps_per_epoch"),
    ],
)
def test_bad_steps_are_one_line(cli, override, message):
    code, out, err = cli("params", "mnist", override)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
