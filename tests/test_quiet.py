"""TensorFlow's native start-up lines are filtered from fd 2; everything else it prints is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import quiet

NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796167943.950258   25833 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.\n",
    "I0000 00:00:1796167393.503011   23140 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.\n",
]


def test_keep_drops_the_noise_and_nothing_else():
    real = "W0000 something.cc:12] a real warning about your model\n"
    assert quiet.keep("".join(NOISE_LINES) + real + "plain text\n") == real + "plain text\n"


def test_fd2_is_filtered_then_restored(capfd):
    with quiet.native_stderr_filtered():
        for line in NOISE_LINES + ["kept line\n"]:
            os.write(2, line.encode())
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "kept line\nafter\n"


def test_a_failed_import_replays_everything(capfd):
    with pytest.raises(ImportError):
        with quiet.native_stderr_filtered():
            os.write(2, NOISE_LINES[1].encode())
            raise ImportError("libcudart.so: cannot open shared object file")
    assert capfd.readouterr().err == NOISE_LINES[1]  # the would-be noise is the evidence now


def test_a_user_error_that_imports_tensorflow_is_one_line(tmp_path):
    """Checking an optimizer name imports Keras and TensorFlow: still exactly one line, without
    TF_CPP_MIN_LOG_LEVEL in the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    env["KERAS_BACKEND"] = "tensorflow"
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "check", "mnist", "train.optimizer=rmsprob"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("cnnlab: error: configs/mnist.yaml"), proc.stderr
    assert "rmsprob" in proc.stderr


_NO_KERAS = """
import sys
from cnnlab import cli
code = cli.main(sys.argv[1:])
print(code, 'keras' in sys.modules, 'tensorflow' in sys.modules, 'jax' in sys.modules)
"""


@pytest.mark.parametrize(
    "argv, code",
    [
        (["list"], 0),
        (["run", "mnist", "train.epochs=five"], 2),  # a schema error: type
        (["run", "mnist", "data.validation_split=1.5"], 2),  # a range
        (["run", "mnist", "model.builder=kim_cnnn"], 2),  # a builder name (and 'layers' too)
        (["params", "mnist", "train.epoch=3"], 2),  # an unknown key
        (["run", "kim_mr", "model.params.feature_map=10"], 2),  # a builder parameter, by its signature
        (["run", "kim_mr", "data.options.fold=12"], 2),  # a dataset option's range
    ],
)
def test_the_schema_layer_never_imports_keras(argv, code):
    """`cnnlab list` and every schema mistake are answered without importing Keras or a backend (the
    seconds a TensorFlow import costs on a small CPU)."""
    proc = subprocess.run(
        [sys.executable, "-c", _NO_KERAS, *argv],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )
    assert proc.stdout.splitlines()[-1] == f"{code} False False False", (proc.stdout[-300:], proc.stderr)
    if code:
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("cnnlab: error: "), proc.stderr
