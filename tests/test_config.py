"""Config validation: every malformed config or override is one line naming file, key path and what was received."""

from __future__ import annotations

import dataclasses
import types

import pytest

from cnnlab.config.experiment import experiment_names, load, split_key

# (replace this text of configs/mnist.yaml, with this, and expect these fragments in the one-line error)
BAD_CONFIGS = {
    "unknown top-level key": ("seed: 1", "seed: 1\nsead: 2", ["sead", "unknown key", "allowed keys:", "seed"]),
    "misspelt nested key": ("  epochs: 5", "  epoch: 5", ["train.epoch", "did you mean 'epochs'"]),
    "wrong type": ("  epochs: 5", "  epochs: five", ["train.epochs", "expected an integer", "'five'"]),
    "bool is not an int": ("  batch_size: 64", "  batch_size: true", ["train.batch_size", "expected an integer"]),
    "non-positive epochs": ("  epochs: 5", "  epochs: 0", ["train.epochs", "positive", "0"]),
    "missing required key": ("  loss: categorical_crossentropy\n", "", ["train.loss", "missing required key"]),
    "unknown layer class": (
        "- Flatten",
        "- Flaten",
        ["model.layers[5]", "unknown layer 'Flaten'", "did you mean 'Flatten'"],
    ),
    "layer class case": (
        "    - Dense: {units: 64",
        "    - dense: {units: 64",
        ["model.layers[6]", "did you mean 'Dense'"],
    ),
    "Lambda refused": ("- Flatten", "- Lambda: {function: x}", ["model.layers[5]", "Lambda", "not allowed"]),
    "unknown layer argument": (
        "{filters: 32,",
        "{filter: 32,",
        ["model.layers[0].Conv2D.filter", "did you mean 'filters'", "allowed:"],
    ),
    "bad layer value": (
        "kernel_size: [3, 3], activation: relu}\n    - MaxPooling2D",
        "kernel_size: [3, 3], activation: relux}\n    - MaxPooling2D",
        ["model.layers[0].Conv2D", "relux"],
    ),
    "layer cannot follow": (
        "    - MaxPooling2D: {pool_size: [2, 2]}\n    - Conv2D: {filters: 64, kernel_size: [3, 3], "
        "activation: relu}\n    - Flatten",
        "    - MaxPooling2D: {pool_size: [9, 9]}\n    - Conv2D: {filters: 64, kernel_size: [3, 3], "
        "activation: relu}\n    - Flatten",
        ["model.layers[4].Conv2D", "cannot follow", "(None, 1, 1, 64)", "negative"],
    ),
    "unknown dataset": ("dataset: mnist ", "dataset: minst ", ["data.dataset", "'minst'", "did you mean 'mnist'"]),
    "unknown dataset option": ("one_hot: true", "onehot: true", ["data.options.onehot", "did you mean 'one_hot'"]),
    "validation split range": ("validation_split: 0.1", "validation_split: 1.5", ["data.validation_split", "1.5"]),
    "unknown optimizer": ("optimizer: RMSpropKeras2 ", "optimizer: rmsprob ", ["train.optimizer", "rmsprob"]),
    "optimizer argument": (
        "optimizer: RMSpropKeras2 ",
        "optimizer: {RMSprop: {lr: 0.001}} ",
        ["train.optimizer.RMSprop.lr", "unknown argument 'lr'", "learning_rate"],
    ),
    "unknown loss": (
        "loss: categorical_crossentropy",
        "loss: categorical_crosentropy",
        ["train.loss", "categorical_crosentropy"],
    ),
    "unknown metric": ("metrics: [accuracy]", "metrics: [acuracy]", ["train.metrics[0]", "acuracy"]),
    "refused callback": (
        "  batch_size: 64\n",
        "  batch_size: 64\n  callbacks: [CSVLogger]\n",
        ["train.callbacks[0]", "CSVLogger", "history.csv"],
    ),
    "callback argument": (
        "  batch_size: 64\n",
        "  batch_size: 64\n  callbacks: [{EarlyStopping: {patiense: 2}}]\n",
        ["train.callbacks[0].EarlyStopping.patiense", "did you mean 'patience'"],
    ),
    "direction of no metric": (
        "  batch_size: 64\n",
        "  batch_size: 64\n  directions: {accurcy: up}\n",
        ["train.directions.accurcy", "not a metric of this run", "did you mean 'accuracy'"],
    ),
    "direction word": (
        "  batch_size: 64\n",
        "  batch_size: 64\n  directions: {accuracy: max}\n",
        ["train.directions.accuracy", "expected one of up, down", "'max'"],
    ),
    "range low > high": ("range: [93322, 93322]", "range: [93323, 93322]", ["reference[1].range", "low <= high"]),
    "range not a pair": ("range: [93322, 93322]", "range: 0.99", ["reference[1].range", "expected a list"]),
    "unknown reference metric": (
        "metric: test_accuracy",
        "metric: test_acc",
        ["reference[0].metric", "test_acc", "did you mean 'test_accuracy'"],
    ),
    "both layers and builder": (
        "  input_shape: [28, 28, 1]\n",
        "  input_shape: [28, 28, 1]\n  builder: simple_convnet\n",
        ["model", "exactly one of 'layers'"],
    ),
    "quick profile typo": ("  train.epochs: 2", "  train.epoch: 2", ["quick profile train.epoch", "did you mean"]),
    "quick profile bad value": ("  train.epochs: 2", "  train.epochs: -1", ["quick profile", "train.epochs", "-1"]),
    "bad name": ("name: mnist\n", "name: My MNIST\n", ["name", "lower-case", "'My MNIST'"]),
    "input shape": ("input_shape: [28, 28, 1]", "input_shape: [28, 0, 1]", ["model.input_shape", "positive"]),
}


@pytest.mark.parametrize("installed", [False, True])
def test_tensorboard_without_its_package_is_refused_at_validation(installed, cli, mnist_config, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (real("json") if installed else None) if name == "tensorboard" else real(name, *a),
    )
    path = mnist_config("  batch_size: 64\n", "  batch_size: 64\n  callbacks: [{TensorBoard: {log_dir: logs}}]\n")
    code, out, err = cli("check", path)
    if installed:
        assert code == 0 and err == "", err
    else:
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert err.strip() == (
            f"cnnlab: error: {path}: train.callbacks[0]: callback 'TensorBoard' needs tensorboard, "
            "not installed here: pip install 'cnnlab[tensorboard]'"
        )


BUILT = {"layer cannot follow"}  # a shape: only building the model finds it (`check --build`, `run`, `params`)


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_bad_config_is_one_line_with_exit_2(case, cli, mnist_config):
    old, new, fragments = BAD_CONFIGS[case]
    path = mnist_config(old, new)
    if case in BUILT:
        assert cli("check", path)[0] == 0  # names and signatures are right
    code, out, err = cli("check", path, *(["--build"] if case in BUILT else []))
    assert code == 2, (out, err)
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err, err
    assert line.startswith(f"cnnlab: error: {path}"), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("name: x\n  bad: [indent\n", ["line 2", "invalid YAML"]),
        ("- just\n- a list\n", ["expected a mapping", "list"]),
        ("", ["expected a mapping", "null"]),
    ],
)
def test_malformed_yaml(text, fragments, cli, write_config):
    path = write_config(text)
    code, _, err = cli("check", path)
    assert code == 2 and err.count("\n") == 1
    for fragment in fragments:
        assert fragment in err


def test_missing_file_and_unknown_experiment(cli, tmp_path):
    code, _, err = cli("check", tmp_path / "nope.yaml")
    assert code == 2 and "nope.yaml: no such config file" in err
    code, _, err = cli("params", "mnits")
    assert code == 2 and "unknown experiment" in err and "did you mean 'mnist'" in err


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("train.epochs=abc", ["override train.epochs='abc'", "train.epochs", "expected an integer"]),
        ("train.epoch=3", ["override train.epoch=3", "did you mean 'epochs'"]),
        ("model.layers.99.Conv2D.filters=3", ["model.layers.99", "list index from 0 to 7"]),
        ("model.layers.0.Conv2D.filters=0", ["model.layers[0].Conv2D", "Keras refused"]),
        ("train.epochs", ["expected key=value"]),
    ],
)
def test_bad_override(override, fragments, cli):
    code, _, err = cli("params", "mnist", override)
    assert code == 2 and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_every_shipped_config_validates_in_both_profiles():
    names = experiment_names()
    assert {"mnist", "mnist_no_pooling", "mnist_dense"} <= set(names)
    for name in names:
        for profile in ("full", "quick"):
            exp = load(name, profile=profile)
            assert exp.config.name == name  # results/<name>/ matches the file


def test_config_is_frozen():
    cfg = load("mnist").config
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.model.layers[0].kwargs["filters"] = 1  # type: ignore[index]


def test_overrides_and_quick_profile_apply():
    full = load("mnist").config
    quick = load("mnist", profile="quick").config
    assert (full.train.epochs, full.data.train_subset) == (5, None)
    assert quick.train.epochs == 2 and quick.data.train_subset == 3000
    over = load("mnist", ["train.epochs=1", "model.layers[0].Conv2D.filters=16", "data.validation_split=0"]).config
    assert over.train.epochs == 1 and over.data.validation_split == 0.0
    assert over.model.layers[0].kwargs["filters"] == 16
    assert load("mnist", ["model.layers.0.Conv2D.filters=16"]).config == over.__class__(
        **{**{f.name: getattr(full, f.name) for f in dataclasses.fields(full)}, "model": over.model}
    )
    # the CLI comes after the profile
    assert load("mnist", ["train.epochs=3"], profile="quick").config.train.epochs == 3


def test_split_key_accepts_both_index_forms():
    assert split_key("model.layers[2].Conv2D.filters") == ["model", "layers", 2, "Conv2D", "filters"]
    assert split_key("model.layers.2.Conv2D.filters") == ["model", "layers", 2, "Conv2D", "filters"]


def test_resolved_config_round_trips(tmp_path):
    exp = load("mnist", ["train.epochs=1"], profile="quick")
    path = tmp_path / "config.yaml"
    path.write_text(exp.resolved_yaml())
    again = load(path).config
    # the same settings; it now says its profile, and its quick section is spent (already applied)
    assert again == dataclasses.replace(exp.config, profile="quick", quick=types.MappingProxyType({}))
    assert again.train.epochs == 1 and again.data.train_subset == 3000


def test_a_resolved_config_records_and_keeps_its_profile(tmp_path):
    quick = load("mnist", profile="quick")
    path = tmp_path / "config.yaml"
    path.write_text(quick.resolved_yaml())
    again = load(path)  # `cnnlab run results/mnist/<quick run>/config.yaml`, no --profile given
    assert again.profile == "quick" and again.config.profile == "quick"
    assert again.config_hash() == quick.config_hash()  # the same settings, not the quick ones applied twice
    assert again.config.train.epochs == quick.config.train.epochs != load("mnist").config.train.epochs
    assert "\nprofile: quick\n" in again.resolved_yaml()
    full = load("mnist")
    path.write_text(full.resolved_yaml())
    assert load(path).profile == "full" and load(path).config_hash() == full.config_hash()
    assert load("mnist").config.profile is None  # configs/ never carry one
