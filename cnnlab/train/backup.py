"""Crash-safe backups of a training phase: weights, optimizer state and epoch, restored when the run restarts.

Reference: keras.callbacks.BackupAndRestore (keras/src/callbacks/backup_and_restore.py), whose role this takes
and whose mechanism it keeps (`model.save_weights` with the optimizer's variables, `model._initial_epoch` set
in `on_train_begin`, the folder removed at the end of training).
Trap: Keras writes `latest.weights.h5` and `training_metadata.json` in place and falls back to its previous copy
only on OSError: a kill -9 during the JSON write left an empty file (json.loads died with a traceback on resume),
and one during the HDF5 write a file h5py reads as `RuntimeError: ... addr overflow`. Here each backup is a
generation `epochNNNNN`: the weights go to a temporary file, are fsynced and renamed, and only then is the
generation's record written (atomically, with the weights' SHA-256 and size) — a generation exists whole or not
at all. Two are kept. A restore tries the newest record first; anything that does not read (any exception,
a checksum or size mismatch) falls back to the one before, then to the start of the phase, with one warning line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import keras

from cnnlab.store.files import atomic_write

KEEP = 2


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _warn(text: str) -> None:
    print(f"cnnlab: warning: {text}", file=sys.stderr, flush=True)


class EpochBackup(keras.callbacks.Callback):
    """Back up at an epoch's end when `seconds` have passed since the last backup (0: every epoch), keep the
    two newest generations, and continue from the newest readable one when the phase starts again."""

    def __init__(self, backup_dir: str | os.PathLike, seconds: float = 0.0, warn=_warn):
        super().__init__()
        self.dir, self.seconds, self.warn = Path(backup_dir), float(seconds), warn
        self._last = time.perf_counter()
        self.restored_epoch: int | None = None

    # -- writing ----------------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        if time.perf_counter() - self._last >= self.seconds:
            self.save(epoch + 1)
            self._last = time.perf_counter()

    def save(self, epoch: int) -> Path:
        """Write generation `epoch` whole (weights, then its record), then drop all but the KEEP newest."""
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"epoch{epoch:05d}"
        tmp = self.dir / f".{name}.{os.getpid()}.tmp.weights.h5"  # Keras wants the .weights.h5 suffix
        try:
            self.model.save_weights(str(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            weights = self.dir / f"{name}.weights.h5"
            os.replace(tmp, weights)
        finally:
            tmp.unlink(missing_ok=True)
        record = {"epoch": epoch, "weights": weights.name, "bytes": weights.stat().st_size, "sha256": _sha256(weights)}
        atomic_write(self.dir / f"{name}.json", json.dumps(record) + "\n")  # the generation exists from here on
        self._prune()
        return weights

    def _prune(self) -> None:
        records = sorted(self.dir.glob("epoch*.json"))
        keep = {p.stem for p in records[-KEEP:]}
        for path in self.dir.iterdir():
            stem = path.name.split(".", 1)[0]
            if stem not in keep:  # older generations, weights without a record, temporaries of a killed save
                path.unlink(missing_ok=True)

    # -- restoring --------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.restore()

    def restore(self) -> int | None:
        """Load the newest readable generation into the model (and optimizer) and set the epoch to continue
        from; None, with the model as it was, when there is nothing (readable) to continue from."""
        records = sorted(self.dir.glob("epoch*.json"), reverse=True) if self.dir.is_dir() else []
        if not records:
            return None
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)  # its variables must exist to be loaded into
        before = self._snapshot()
        problems = []
        for record_path in records:
            try:
                record = json.loads(record_path.read_text())
                weights = self.dir / record["weights"]
                if weights.stat().st_size != record["bytes"] or _sha256(weights) != record["sha256"]:
                    raise ValueError("its weights file does not match its checksum (cut while written?)")
                self.model.load_weights(str(weights))
                epoch = int(record["epoch"])
            except Exception as exc:  # noqa: BLE001 — any unreadable backup falls back; none may stop the run
                self._put_back(before)
                problems.append(
                    f"{record_path.stem} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
                    if str(exc)
                    else f"{record_path.stem} ({type(exc).__name__})"
                )
                continue
            self.model._initial_epoch = epoch  # the Keras mechanism BackupAndRestore uses: fit starts there
            self.restored_epoch = epoch
            if problems:
                self.warn(f"{self.dir}: unreadable backup {', '.join(problems)}; continuing from epoch {epoch}")
            return epoch
        self.warn(
            f"{self.dir}: no readable backup ({', '.join(problems)}); this training phase restarts from its first epoch"
        )
        return None

    def _snapshot(self) -> list:
        optimizer = getattr(self.model, "optimizer", None)
        variables = list(self.model.weights) + (list(optimizer.variables) if optimizer is not None else [])
        return [(v, keras.ops.convert_to_numpy(v)) for v in variables]

    @staticmethod
    def _put_back(snapshot: list) -> None:
        for variable, value in snapshot:  # a load that failed half-way must not leave half the weights
            variable.assign(value)

    def on_train_end(self, logs=None):
        shutil.rmtree(self.dir, ignore_errors=True)  # the phase is over: its backups are spent (as in Keras)
