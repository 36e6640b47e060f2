"""cnnlab under another Keras backend with TensorFlow made unimportable, as on a JAX-only GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

BLOCK_TF = textwrap.dedent("""
    import importlib.abc, importlib.machinery, sys
    # TensorFlow as absent as on a machine without it: `import tensorflow` raises ModuleNotFoundError and leaves
    # no entry in sys.modules (Keras tests `"tensorflow" in sys.modules`); find_spec answers a spec without an
    # origin, which torch._dynamo (it asks at import time) skips like a missing module
    class Absent(importlib.abc.Loader):
        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked in this test)", name=spec.name)
        def exec_module(self, module):
            pass
    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return importlib.machinery.ModuleSpec(name, Absent())
    sys.meta_path.insert(0, BlockTensorFlow())
    def tensorflow_imported():
        return [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
""")


def _python(code: str, env_extra: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env_extra}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TF + textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_importing_cnnlab_imports_no_framework():
    proc = _python(
        """
        import cnnlab.cli, cnnlab.config.experiment, cnnlab.report.compare, cnnlab.store.results
        heavy = [m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules]
        assert not heavy, heavy
    """,
        {},
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_mnist_slice_trains_under_another_backend_without_tensorflow(data_dir, tmp_path, backend):
    pytest.importorskip(backend)
    proc = _python(
        f"""
        from cnnlab.cli import main
        rc = main(["--results-dir", {str(tmp_path)!r}, "run", "mnist", "data.train_subset=300",
                   "data.test_subset=100", "train.epochs=1", "--data-dir", {str(data_dir)!r}, "--verbose", "0"])
        assert not tensorflow_imported(), "tensorflow was imported"
        sys.exit(rc)
    """,
        {"KERAS_BACKEND": backend},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p for p in (tmp_path / "mnist").iterdir() if p.is_dir()]
    m = json.loads((run / "metrics.json").read_text())
    assert m["environment"]["backend"] == backend and m["environment"]["backend_version"]
    assert m["measured"]["params_total"] == 93_322 and m["epochs_run"] == 1


def test_autodiff_under_jax_without_tensorflow():
    """Max-pool backprop, saliency and Grad-CAM through jax.vjp give the same known answers."""
    pytest.importorskip("jax")
    proc = _python(
        """
        import numpy as np
        from cnnlab.lectures import arith
        r = arith.maxpool_backprop(arith.LECTURE_001_GRID, 3, 1, arith.LECTURE_001_UPSTREAM)
        assert np.array_equal(r.autodiff, r.direct), r.autodiff
        assert r.autodiff[4, 1] == 8 and r.autodiff.sum() == 21
        import keras
        assert keras.backend.backend() == "jax"
        from tests.test_explain import (test_grad_cam_finds_the_channel_and_place_the_score_depends_on,
                                        test_saliency_lights_up_exactly_where_the_model_looks)
        test_saliency_lights_up_exactly_where_the_model_looks()
        test_grad_cam_finds_the_channel_and_place_the_score_depends_on()
        assert not tensorflow_imported(), "tensorflow was imported"
    """,
        {"KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize(
    "ref, overrides, params_total",
    [
        # Kim's multichannel CNN with GloVe vectors: Embedding ×2, per-channel Conv1D, MaxNorm, Adadelta
        ("kim_trec:multichannel", ["data.train_subset=300", "data.test_subset=100", "train.epochs=1"], None),
        # the IMDB Conv1D on the cached raw reviews: tokeniser and padding in numpy
        ("imdb_conv1d", ["data.train_subset=200", "data.test_subset=100", "train.epochs=1"], 1_315_937),
        # the augmentation layers (rotation, shift, shear, zoom, flip) inside the model, on decoded JPEGs
        (
            "cats_dogs_augmented",
            [
                "data.train_subset=40",
                "data.val_subset=20",
                "data.test_subset=20",
                "train.epochs=1",
                "train.batch_size=20",
                "train.steps_per_epoch=2",
                "train.validation_steps=1",
            ],
            3_453_121,
        ),
    ],
)
def test_text_and_image_models_train_under_another_backend_without_tensorflow(
    data_dir, tmp_path, ref, overrides, params_total, backend
):
    pytest.importorskip(backend)
    proc = _python(
        f"""
        from cnnlab.cli import main
        rc = main(["--results-dir", {str(tmp_path)!r}, "run", {ref!r}, *{overrides!r}, "--data-dir",
                   {str(data_dir)!r}, "--verbose", "0", "--no-summary"])
        assert not tensorflow_imported(), "tensorflow was imported"
        sys.exit(rc)
    """,
        {"KERAS_BACKEND": backend},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = [p for p in (tmp_path / ref.replace(":", "_")).iterdir() if p.is_dir()]
    m = json.loads((run / "metrics.json").read_text())
    assert m["environment"]["backend"] == backend and m["epochs_run"] == 1
    if params_total:
        assert m["measured"]["params_total"] == params_total
