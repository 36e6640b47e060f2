"""Mixed precision as a config switch, recorded in metrics.json, and the determinism switch on the seed."""

from __future__ import annotations

import json

SLICE = ["data.train_subset=300", "data.test_subset=50", "train.epochs=1", "--verbose", "0", "--no-summary"]


def _metrics(results, experiment="mnist"):
    runs = sorted(p for p in (results / experiment).iterdir() if p.is_dir() and not p.name.startswith("."))
    return [json.loads((r / "metrics.json").read_text()) for r in runs]


def test_mixed_precision_is_used_recorded_and_reset(cli, data_dir, tmp_path):
    import keras

    results = tmp_path / "results"
    assert (
        cli(
            "--results-dir",
            results,
            "run",
            "mnist",
            "train.precision=float32",  # the legacy key may only confirm or replace float32, not mnist.yaml's auto
            "train.mixed_precision=mixed_bfloat16",
            *SLICE,
            "--data-dir",
            data_dir,
        )[0]
        == 0
    )
    assert (
        cli("--results-dir", results, "run", "mnist", "--precision", "float32", *SLICE, "--data-dir", data_dir)[0] == 0
    )
    first, second = _metrics(results)
    assert first["dtype_policy"] == "mixed_bfloat16" and second["dtype_policy"] == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the next run in the process starts from float32
    assert first["measured"]["params_total"] == second["measured"]["params_total"] == 93_322
    assert (
        first["determinism"] == "tf.config.experimental.enable_op_determinism()"
        or keras.backend.backend() != "tensorflow"
    )


def test_unknown_precision_is_a_config_error(mnist_config):
    import pytest

    from cnnlab.config.experiment import load
    from cnnlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.mixed_precision: expected one of mixed_float16, mixed_bfloat16"):
        load(mnist_config(), ["train.mixed_precision=float8"])


def test_determinism_off_is_a_run_not_a_traceback(data_dir, tmp_path):
    """train.deterministic=false in a fresh process (determinism never switched on there): the run completes and
    records 'off'. (It used to die reading tf.config.experimental.is_op_determinism_enabled, which TensorFlow's
    public API does not have; bench_cpu_costs found it.)"""
    import os
    import subprocess
    import sys

    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "cnnlab", "--results-dir", str(results), "run", "mnist", "train.deterministic=false"]
    done = subprocess.run(
        [*cmd, "--precision", "float32", *SLICE, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-1500:]
    (m,) = _metrics(results)
    assert m["determinism"] == "off"
