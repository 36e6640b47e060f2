"""Data-parallel training on two virtual CPU devices: Keras's distribution API (JAX), MirroredStrategy (TF)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

RUN = """
    from cnnlab.cli import main
    rc = main(["--results-dir", {results!r}, "run", "mnist", "data.train_subset=256", "data.test_subset=64",
               "train.epochs=1", "train.distribution=data_parallel", "--data-dir", {data!r}, "--verbose", "0",
               "--no-summary"])
    sys.exit(rc)
"""
TWO_TF_CPUS = """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def _run(code: str, env: dict, tmp_path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\n" + textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p for p in (tmp_path / "mnist").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return json.loads((run / "metrics.json").read_text())


def test_data_parallel_on_two_virtual_devices_under_jax(data_dir, tmp_path):
    pytest.importorskip("jax")
    m = _run(
        RUN.format(results=str(tmp_path), data=str(data_dir)),
        {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        tmp_path,
    )
    assert m["distribution"].startswith("keras.distribution.DataParallel over 2 devices")
    assert m["epochs_run"] == 1 and m["measured"]["params_total"] == 93_322


def test_mirrored_strategy_on_two_logical_cpus_under_tensorflow(data_dir, tmp_path):
    pytest.importorskip("tensorflow")
    m = _run(
        TWO_TF_CPUS + RUN.format(results=str(tmp_path), data=str(data_dir)), {"KERAS_BACKEND": "tensorflow"}, tmp_path
    )
    assert m["distribution"].startswith("tf.distribute.MirroredStrategy over 2 replicas")
    assert m["epochs_run"] == 1 and m["measured"]["params_total"] == 93_322


def test_data_parallel_under_torch_is_a_clear_error(monkeypatch):
    import keras

    from cnnlab.config.experiment import Ctx
    from cnnlab.errors import ConfigError
    from cnnlab.train.runner import distribution_scope

    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(
        ConfigError, match=r"x.yaml: train.distribution: data_parallel runs through .*KERAS_BACKEND=torch"
    ):
        with distribution_scope("data_parallel", Ctx("x.yaml")):
            pass
