"""Resume after an interruption: the same run, started again, continues from its last completed epoch.

Reference: keras.callbacks.BackupAndRestore (weights, optimizer state and epoch, saved after every epoch);
issue "Batch reproduction you can trust" (Ctrl-C or kill -9, then the same command again).
Trap: BackupAndRestore knows one `fit` call; a run with phases (fine-tuning) is several, so each phase backs up
into its own folder, a finished phase leaves a marker and its final weights (by variable path, since a new
phase changes which weights are trainable), and the unfinished `.partial` results folder is reused so that
history.csv keeps the epochs before the interruption. A resumed run is not bit-identical to an uninterrupted
one (the random state of shuffling and dropout restarts); metrics.json records `resumed_from_epoch`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from cnnlab.store.files import atomic_write, cache_dir, read_npz, write_npz


class ResumeState:
    """The resume folder of one experiment setting: .cache/resume/<experiment>/<config hash>/."""

    def __init__(self, experiment: str, config_hash: str):
        self.dir = cache_dir("resume", experiment, config_hash)

    # -- the results folder under construction --------------------------------------------------
    def partial_run_id(self) -> str | None:
        """The run id of the interrupted run to continue, if any."""
        try:
            return json.loads((self.dir / "state.json").read_text())["run_id"]
        except (OSError, ValueError, KeyError):
            return None

    def start(self, run_id: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / "state.json", json.dumps({"run_id": run_id}) + "\n")

    # -- phases -----------------------------------------------------------------------------------
    def phase_dir(self, i: int) -> Path:
        return self.dir / f"phase{i + 1}"

    def phase_done(self, i: int) -> bool:
        return (self.dir / f"phase{i + 1}.done.npz").is_file()

    def finish_phase(self, i: int, model) -> None:
        """Keep the weights at the end of phase i (by variable path) and mark it finished."""
        write_npz(self.dir / f"phase{i + 1}.done.npz", **weights_by_path(model))

    def restore_phase(self, i: int, model) -> None:
        data = read_npz(self.dir / f"phase{i + 1}.done.npz")
        if data is not None:
            set_weights_by_path(model, data)

    # -- best weights (train.restore_best) ------------------------------------------------------
    def save_best(self, model, info: dict) -> None:
        write_npz(self.dir / "best.npz", **weights_by_path(model))
        atomic_write(self.dir / "best.json", json.dumps(info) + "\n")

    def load_best(self) -> tuple[dict | None, dict | None]:
        try:
            info = json.loads((self.dir / "best.json").read_text())
        except (OSError, ValueError):
            return None, None
        return read_npz(self.dir / "best.npz"), info

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _key(path: str) -> str:
    return path.replace("/", "|")


def weights_by_path(model) -> dict[str, np.ndarray]:
    """Every model weight under its variable path ('kim_cnn/conv1d_3/kernel'), independent of trainable flags."""
    import keras

    return {_key(w.path): keras.ops.convert_to_numpy(w) for w in model.weights}


def set_weights_by_path(model, data: dict[str, np.ndarray]) -> None:
    for w in model.weights:
        value = data.get(_key(w.path))
        if value is not None:
            w.assign(value)
