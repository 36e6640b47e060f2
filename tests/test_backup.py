"""Fault injection on the training backup: every write cut at every stage, every read of a damaged backup."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cnnlab.train.backup import EpochBackup


def _model(seed: int):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(keras.optimizers.RMSprop(0.01), "mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), epochs=1, verbose=0)  # optimizer state
    return model


def _weights(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture
def saved(tmp_path):
    """Generations 2 and 3 saved from two different models; returns (backup dir, weights of 2, weights of 3)."""
    gens = {}
    for epoch, seed in ((1, 1), (2, 2), (3, 3)):
        model = _model(seed)
        b = EpochBackup(tmp_path / "phase1")
        b.set_model(model)
        b.save(epoch)
        gens[epoch] = _weights(model)
    return tmp_path / "phase1", gens[2], gens[3]


def _restore(folder, warnings):
    model = _model(99)
    before = _weights(model)
    b = EpochBackup(folder, warn=warnings.append)
    b.set_model(model)
    return b.restore(), model, before


def test_two_generations_kept_and_the_newest_restored(saved):
    folder, two, three = saved
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch00002.json",
        "epoch00002.weights.h5",
        "epoch00003.json",
        "epoch00003.weights.h5",
    ]
    warnings = []
    epoch, model, _ = _restore(folder, warnings)
    assert epoch == 3 and model._initial_epoch == 3 and _same(_weights(model), three) and warnings == []
    record = json.loads((folder / "epoch00003.json").read_text())
    assert record["weights"] == "epoch00003.weights.h5" and len(record["sha256"]) == 64


@pytest.mark.parametrize(
    "damage",
    [
        "truncated weights",
        "garbage weights",
        "weights gone",
        "empty record",
        "half a record",
        "record names another file",
    ],
)
def test_a_damaged_newest_backup_falls_back_to_the_one_before(saved, damage):
    folder, two, three = saved
    weights, record = folder / "epoch00003.weights.h5", folder / "epoch00003.json"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage weights":
        weights.write_bytes(b"\0" * weights.stat().st_size)
    elif damage == "weights gone":
        weights.unlink()
    elif damage == "empty record":  # the kill -9 during Keras's training_metadata.json write
        record.write_text("")
    elif damage == "half a record":
        record.write_text(record.read_text()[:20])
    else:
        record.write_text(json.dumps({**json.loads(record.read_text()), "weights": "nothing.weights.h5"}))
    warnings = []
    epoch, model, _ = _restore(folder, warnings)
    assert epoch == 2 and _same(_weights(model), two)
    assert len(warnings) == 1 and "unreadable backup epoch00003" in warnings[0] and "from epoch 2" in warnings[0]


def test_weights_that_pass_the_checksum_but_fail_to_load_leave_no_half_loaded_model(saved):
    folder, two, three = saved
    # a backup of another architecture: a valid file, its record right, but it cannot load into this model
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5), keras.layers.Dense(1)])
    other.compile("sgd", "mse")
    for name in ("epoch00002", "epoch00003"):
        other.save_weights(str(folder / f"{name}.weights.h5"))
        rec = json.loads((folder / f"{name}.json").read_text())
        from cnnlab.train.backup import _sha256

        p = folder / f"{name}.weights.h5"
        (folder / f"{name}.json").write_text(json.dumps({**rec, "bytes": p.stat().st_size, "sha256": _sha256(p)}))
    warnings = []
    epoch, model, before = _restore(folder, warnings)
    assert epoch is None and model._initial_epoch is None
    assert _same(_weights(model), before)  # exactly the weights it had: the phase restarts cleanly
    assert len(warnings) == 1 and "no readable backup" in warnings[0] and "restarts from its first epoch" in warnings[0]


def test_a_save_cut_at_any_stage_leaves_the_previous_generation_whole(saved, monkeypatch):
    folder, two, three = saved
    model = _model(4)
    b = EpochBackup(folder)
    b.set_model(model)
    real = model.save_weights

    def cut_weights(path, *a, **k):  # killed half-way through the HDF5 write
        real(path, *a, **k)
        with open(path, "r+b") as f:
            f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save_weights", cut_weights)
    with pytest.raises(KeyboardInterrupt):
        b.save(4)
    monkeypatch.setattr(model, "save_weights", real)
    import cnnlab.train.backup as backup_mod

    def cut_record(path, data):  # killed after the weights were renamed, before the record
        raise KeyboardInterrupt

    monkeypatch.setattr(backup_mod, "atomic_write", cut_record)
    with pytest.raises(KeyboardInterrupt):
        b.save(5)
    names = sorted(p.name for p in folder.iterdir())
    assert "epoch00005.weights.h5" in names and "epoch00005.json" not in names  # weights without a record
    assert not any(".tmp." in n for n in names)  # the cut HDF5 temporary was removed
    warnings = []
    epoch, restored, _ = _restore(folder, warnings)
    assert epoch == 3 and _same(_weights(restored), three) and warnings == []
    monkeypatch.undo()
    b.save(6)  # the next whole save tidies the orphans away
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch00003.json",
        "epoch00003.weights.h5",
        "epoch00006.json",
        "epoch00006.weights.h5",
    ]


def test_nothing_to_restore_is_a_fresh_start(tmp_path):
    warnings = []
    epoch, model, before = _restore(tmp_path / "none", warnings)
    assert epoch is None and warnings == [] and _same(_weights(model), before)


def test_a_fit_continues_from_the_restored_epoch(saved):
    folder, _, _ = saved
    model = _model(5)
    seen = []
    log = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    model.fit(
        np.ones((4, 3), "float32"),
        np.ones((4, 1), "float32"),
        epochs=5,
        verbose=0,
        callbacks=[EpochBackup(folder), log],
    )
    assert seen == [3, 4] and not folder.exists()
