"""The signature index: config checks by Keras's and cnnlab's signatures, read once per Keras version and kept
in .cache/keras_signatures/, so that `cnnlab check` imports no Keras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.config import keras_specs
from cnnlab.config.experiment import ClassSpec, ConfigError, Ctx, experiment_refs, load

REPO = Path(__file__).resolve().parent.parent
_CHECK = """
import sys
from cnnlab import cli
code = cli.main(sys.argv[1:])
print(code, 'keras' in sys.modules, 'tensorflow' in sys.modules)
"""


def _check(tmp_path, *argv):
    proc = subprocess.run(
        [sys.executable, "-c", _CHECK, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**__import__("os").environ, "CNNLAB_CACHE_DIR": str(tmp_path)},
    )
    return proc.stdout.splitlines()[-1], proc.stderr


def test_check_imports_no_keras_once_the_index_exists_and_rebuilds_a_damaged_one(tmp_path):
    first, _ = _check(tmp_path, "check", "mnist", "kim_mr")
    assert first == "0 True True"  # no index yet: read from Keras once, then kept
    (index,) = (tmp_path / "keras_signatures").glob("keras-*.json")
    assert _check(tmp_path, "check", "mnist", "kim_mr")[0] == "0 False False"
    line, err = _check(tmp_path, "check", "mnist", "model.layers.0.Conv2D.activation=relux")
    assert line == "2 False False" and "did you mean 'relu'" in err, err  # a user error, still without Keras
    index.write_text('{"version": 3, "classes": {')  # cut short
    assert _check(tmp_path, "check", "mnist")[0] == "0 True True"
    assert json.loads(index.read_text())["classes"]["layer"]["Conv2D"]["args"][0] == "filters"


def test_every_shipped_config_passes_by_signature_and_by_building():
    """The index and Keras agree on every class, argument and identifier the shipped configs use."""
    from cnnlab.models.stack import build_model, needs_data

    for ref in experiment_refs().values():
        exp = load(ref)  # by the index
        if not needs_data(exp.config.model):
            build_model(exp.config.model, exp.config.name, Ctx(str(exp.path)))  # by Keras


@pytest.mark.parametrize(
    "kind, spec, fragments",
    [
        ("layer", ClassSpec("Dense", {"units": 4, "activation": "relux"}), ["unknown activation 'relux'", "'relu'"]),
        (
            "layer",
            ClassSpec("Dense", {"units": 4, "kernel_initializer": "he_nromal"}),
            ["unknown initializer 'he_nromal'", "'he_normal'"],
        ),
        ("layer", ClassSpec("Dense", {"units": 4, "kernel_regularizer": "l3"}), ["unknown regularizer 'l3'"]),
        ("layer", ClassSpec("Dense", {}), ["missing required argument 'units' of Dense"]),
        ("layer", ClassSpec("Dense", {"unit": 4}), ["unknown argument 'unit'", "did you mean 'units'"]),
        ("layer", ClassSpec("Flaten", {}), ["unknown layer 'Flaten'", "did you mean 'Flatten'"]),
        ("layer", ClassSpec("VGG16", {"weigths": "x"}), ["unknown parameter 'weigths'", "did you mean 'weights'"]),
        ("layer", ClassSpec("VGG16", {"trainable": "yes"}), ["VGG16.trainable", "expected"]),
        ("optimizer", ClassSpec("rmsprob", {}), ["unknown optimizer 'rmsprob'", "did you mean 'rmsprop'"]),
        ("loss", ClassSpec("mse_", {}), ["unknown loss 'mse_'"]),
        ("metric", ClassSpec("acuracy", {}), ["unknown metric 'acuracy'", "did you mean"]),
        ("callback", ClassSpec("CSVLogger", {}), ["not allowed", "history.csv"]),
    ],
)
def test_mistakes_found_by_signature(kind, spec, fragments):
    with pytest.raises(ConfigError) as err:
        keras_specs.check(kind, spec, Ctx("c.yaml"), "p")
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "kind, spec",
    [
        ("layer", ClassSpec("Dense", {"units": 4, "activation": "softmax", "kernel_initializer": "he_normal"})),
        ("layer", ClassSpec("LSTM", {"units": 4, "recurrent_activation": "sigmoid"})),
        ("layer", ClassSpec("RandomAffine", {})),  # cnnlab's own layers
        ("optimizer", ClassSpec("rmsprop", {})),
        ("optimizer", ClassSpec("RMSpropKeras2", {})),
        ("loss", ClassSpec("mse", {})),
        ("loss", ClassSpec("binary_crossentropy", {})),
        ("metric", ClassSpec("accuracy", {})),
        ("metric", ClassSpec("mae", {})),
        ("metric", ClassSpec("AUC", {})),
    ],
)
def test_valid_specs_pass(kind, spec):
    keras_specs.check(kind, spec, Ctx("c.yaml"), "p")


@pytest.mark.parametrize(
    "spec, logged",
    [
        (ClassSpec("accuracy", {}), "accuracy"),
        (ClassSpec("mae", {}), "mae"),
        (ClassSpec("BinaryAccuracy", {}), "binary_accuracy"),
        (ClassSpec("AUC", {"name": "roc"}), "roc"),
        (ClassSpec("BinaryAccuracyKeras2", {}), "keras2_accuracy"),
    ],
)
def test_metric_names_are_what_keras_logs(spec, logged):
    import keras

    assert keras_specs.metric_name(spec) == logged  # by the index
    built = keras_specs.make("metric", spec)  # what Keras logs: a string stays itself
    assert (
        built == logged
        if isinstance(built, str)
        else (isinstance(built, keras.metrics.Metric) and built.name == logged)
    )


def test_the_index_is_keyed_by_the_sources_of_cnnlabs_own_classes_which_exist():
    from cnnlab.store import meta

    # a missing file would digest as '-' and an edit of cnnlab's own layers would never rebuild the index
    assert all((meta.PACKAGE / rel).is_file() for rel in keras_specs._OWN_SOURCES)
