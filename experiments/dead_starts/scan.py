"""Which seeds start dead: the initial outputs of a linear-output model, before any training step, per seed.

What: for each seed, the model exactly as `cnnlab run EXP seed=K` builds it (the runner's own first two steps:
`keras.utils.set_random_seed`, the dtype policy, the model and the data split in the runner's order), its outputs
on the training split, and the share inside binary cross-entropy's unclipped band (1e-7, 1 - 1e-7). With none
inside, every gradient is zero and the run never learns (report/compare.py, `dead_start`). One CSV row per seed.
Reference: DLwP notebook 6.4's Conv1D with the slide's linear `Dense(1)` (lecture 002); Keras 2.0.8's
`K.binary_crossentropy` clips the same way (experiments/imdb_conv1d.md, "Dead starts").
Trap: the scan must draw the initial weights as the run does, so it goes through the runner's steps rather than a
freshly built model: the same seed under another backend, or a model built before another, draws other weights.

    python experiments/dead_starts/scan.py imdb_conv1d_faithful 1 40 > results/dead_starts/imdb_conv1d_faithful_tensorflow.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from cnnlab.config.experiment import load
from cnnlab.train import runner

LOW, HIGH = 1e-7, 1 - 1e-7  # the clip of Keras's binary cross-entropy (both Keras 2.0.8 and Keras 3)


def scan(experiment: str, seed: int) -> dict:
    """The initial outputs' range and the share of training samples inside the unclipped band, for one seed."""
    r = runner._Run(load(experiment, [f"seed={seed}"]), Path("unused"), lambda _: None, None)
    runner._set_up_backend(r)
    runner._build_model_and_load_data(r, None)
    z = np.asarray(r.model.predict(r.splits.x_train, batch_size=512, verbose=0), dtype=np.float64).ravel()
    inside = float(np.mean((z > LOW) & (z < HIGH)))
    return {"seed": seed, "z_min": z.min(), "z_max": z.max(), "inside_band": inside, "dead": int(inside == 0.0)}


def main(argv: list[str]) -> int:
    experiment, first, last = argv[0], int(argv[1]), int(argv[2])
    print(f"# {experiment}, backend {keras.backend.backend()}, {len(range(first, last + 1))} seeds", flush=True)
    print("seed,z_min,z_max,inside_band,dead", flush=True)
    for seed in range(first, last + 1):
        row = scan(experiment, seed)
        print(f"{seed},{row['z_min']:.6f},{row['z_max']:.6f},{row['inside_band']:.6f},{row['dead']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
