"""Shared fixtures: the CLI as a function, tiny configs written in the test, and the offline data directory."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """$CNNLAB_DATA_DIR, else ../shared/data beside the checkout, else None."""
    env = os.environ.get("CNNLAB_DATA_DIR")
    if env:
        return Path(env)
    guess = REPO.parent / "shared" / "data"
    return guess if guess.is_dir() else None


@pytest.fixture
def data_dir() -> Path:
    """The real offline data; required when CNNLAB_DATA_DIR is set (as in CI), else skipped if absent."""
    path = shared_data_dir()
    if path is None or not (path / "mnist").is_dir():
        if os.environ.get("CNNLAB_DATA_DIR"):
            pytest.fail(f"CNNLAB_DATA_DIR={os.environ['CNNLAB_DATA_DIR']} has no mnist/ folder")
        pytest.skip("offline data not found (set CNNLAB_DATA_DIR=../shared/data)")
    return path


@pytest.fixture
def cli(capsys):
    """Run `cnnlab ARGS` in-process; returns (exit code, stdout, stderr)."""
    from cnnlab.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


# configs/mnist.yaml without its full profile's `precision: auto`: a test of the machinery must not train in
# bfloat16 on one machine and float32 on the next (test_precision_auto fakes the machine where it matters)
MNIST_YAML = "\n".join(
    ln for ln in (REPO / "configs" / "mnist.yaml").read_text().splitlines() if not ln.startswith("  precision: auto")
)


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML config (a string, dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def mnist_config(write_config):
    """configs/mnist.yaml with one textual replacement (old, new), written to a temporary file."""

    def make(old: str = "", new: str = "") -> Path:
        text = MNIST_YAML
        if old:
            assert old in text, f"test bug: {old!r} is not in configs/mnist.yaml"
            text = text.replace(old, new, 1)
        return write_config(text)

    return make


@pytest.fixture(autouse=True)
def _float32_after_each_test():
    """A run sets Keras's global dtype policy to its own (mixed_bfloat16 where `auto` says so on an AMX
    machine) and leaves it: the next test in this process starts from float32 again, as a new process does."""
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.config.set_dtype_policy("float32")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Trained models go to a temporary cache, never into the repository's .cache/."""
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "cache"))
