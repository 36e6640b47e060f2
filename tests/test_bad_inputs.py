"""One corpus of user mistakes — configs, overrides, command lines, data directories, caches, environment
variables: each is exactly one line on stderr naming where the mistake is, exit status 2, nothing on stdout, no
traceback, and no results folder written."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# (command line after `cnnlab`, a fragment the one line must contain); {tmp} is a fresh empty folder
CORPUS = [
    # overrides: keys, types, ranges, syntax
    (["run", "mnist", "train.epochs=five"], "train.epochs: expected an integer"),
    (["run", "mnist", "train.epochs=0"], "train.epochs: expected a positive integer"),
    (["run", "mnist", "train.epoch=3"], "unknown key 'epoch'"),
    (["run", "mnist", "train.batch_size=-8"], "train.batch_size"),
    (["run", "mnist", "data.validation_split=1.5"], "data.validation_split"),
    (["run", "mnist", "data.train_subset=0"], "data.train_subset"),
    (["run", "mnist", "data.datset=mnist"], "did you mean 'dataset'"),
    (["run", "mnist", "data.dataset=minst"], "unknown dataset 'minst'"),
    (["run", "mnist", "seed=one"], "seed: expected an integer"),
    (["run", "mnist", "train.precision=bf16"], "train.precision"),
    (["run", "mnist", "train.restore_best=maybe"], "train.restore_best: expected true or false"),
    (["run", "mnist", "train.steps_per_epoch=0"], "train.steps_per_epoch"),
    (["run", "mnist", "train.validation_steps=5"], "train.validation_steps"),
    (["run", "mnist", "train.directions={accuracy: higher}"], "train.directions.accuracy"),
    (["run", "mnist", "train.directions={acc: up}"], "train.directions.acc: not a metric"),
    (["run", "mnist", "model.builder=kim_cnn"], "exactly one of 'layers'"),
    (["run", "mnist", "model.input_shape=[28, 0, 1]"], "model.input_shape"),
    (["run", "mnist", "reference=[{metric: test_acc, value: 1}]"], "test_acc"),
    (["run", "mnist", "name=My MNIST"], "name"),
    (["run", "mnist", "notakey"], "notakey"),
    (["run", "kim_mr", "data.options.fold=12"], "data.options.fold"),
    (["run", "kim_mr", "data.options.folds=1"], "data.options.folds"),
    (["run", "kim_mr", "model.params.feature_map=10"], "unknown parameter 'feature_map'"),
    (["run", "kim_mr", "model.params.variant=dynamic"], "model.params.variant"),
    (["run", "kim_sst2", "data.options.fold=3"], "data.options.fold"),
    (["run", "imdb_conv1d", "data.options.num_words=-1"], "data.options.num_words"),
    # Keras names and arguments (the second layer)
    (["run", "mnist", "train.optimizer=rmsprob"], "unknown optimizer 'rmsprob'"),
    (["run", "mnist", "train.optimizer={RMSprop: {lr: 0.001}}"], "unknown argument 'lr'"),
    (["run", "mnist", "train.loss=categorical_crosentropy"], "categorical_crosentropy"),
    (["run", "mnist", "train.metrics=[acuracy]"], "acuracy"),
    (["run", "mnist", "train.callbacks=[CSVLogger]"], "CSVLogger"),
    (["run", "mnist", "train.callbacks=[{EarlyStopping: {patiense: 2}}]"], "did you mean 'patience'"),
    (["run", "mnist", "train.callbacks=[LambdaCallback]"], "LambdaCallback"),
    (["run", "mnist", "train.callbacks=[{EarlyStopping: {monitor: val_acc}}]"], "'val_acc' is not a metric this run"),
    (["run", "mnist", "train.callbacks=[{ReduceLROnPlateau: {monitor: vall_loss}}]"], "did you mean 'val_loss'"),
    # experiments, variants, profiles, sweeps, command lines
    (["run", "mnsit"], "mnsit"),
    (["run", "kim_mr:dynamic"], "no variant 'dynamic'"),
    (["run", "{tmp}/missing.yaml"], "missing.yaml"),
    (["run", "mnist", "--sweep", "seed"], "--sweep seed"),
    (["run", "mnist", "--sweep", "seed=3..1"], "seed"),
    (["params", "mnist", "train.epoch=3"], "unknown key 'epoch'"),
    (["check", "nosuch"], "nosuch"),
    (["reproduce", "vgg*x"], "no experiment matches"),
    (["reproduce", "mnist", "--seeds", "0"], "--seeds"),
    (["reproduce", "mnist", "seed=4", "--seeds", "2"], "contradict"),
    (["reproduce", "mnist", "--devices", "gpu0"], "--devices"),
    (["compare", "{tmp}/a"], "compare takes two result folders"),
    (["compare", "{tmp}/a", "{tmp}/b"], "no such results folder"),
    (["ab", "{tmp}/a", "{tmp}/b"], ""),
    # committed results
    (["compare"], "metrics.json: not a readable metrics.json"),
    # data directories and environment
    (["run", "mnist", "--data-dir", "{tmp}/nodata", "data.train_subset=10"], "data directory does not exist"),
    (["run", "mnist", "--data-dir", "{tmp}/a.yaml", "data.train_subset=10"], "a.yaml: not a directory"),
    (["reproduce", "mnist", "--data-dir", "{tmp}/nodata"], "data directory does not exist"),
    # found by hand on inputs the corpus had not seen (2026-12-06): a traceback, two silent runs, usage blocks
    (["run", "mnist", "seed=-1"], "seed: expected an integer from 0 to 4294967295"),
    (["run", "mnist", "seed=4294967296"], "seed: expected an integer from 0"),
    (["run", "mnist", "train..epochs=3"], "malformed key"),
    (["run", "mnist", "train.epochs.=3"], "malformed key"),
    (["run", "mnist", ".seed=3"], "malformed key"),
    (["run", "{tmp}/a.yaml"], "a.yaml: line 5, column 3: invalid YAML: duplicate key 'epochs'"),
    (["run", "mnist", "train.callbacks=[{EarlyStopping: {patience: 1, patience: 2}}]"], "duplicate key 'patience'"),
    (["run", "mnist", "--profile", "nosuch"], "run: argument --profile: invalid choice: 'nosuch'"),
    (["reproduce", "mnist", "--seeds", "abc"], "reproduce: argument --seeds: invalid"),
    (["ab", "{tmp}/a"], "ab: the following arguments are required: b"),
    (["nosuchcommand"], "argument COMMAND: invalid choice: 'nosuchcommand'"),
    (["run", "mnist", "--bogus"], "unrecognized arguments: --bogus"),
    # found by hand on unseen inputs (2026-12-06, second round): tracebacks from NumPy and float(), Keras's refusal
    # of an integer rate seconds into a run, and a negative rate trained without a word
    (["run", "mnist", f"train.batch_size={10**23}"], "train.batch_size: expected an integer of at most 19 digits"),
    (["run", "mnist", f"data.validation_split={10**400}"], "data.validation_split: expected a number"),
    (["run", "mnist", "train.optimizer={RMSprop: {learning_rate: -1}}"], "learning_rate: expected a positive number"),
    (["run", "mnist", "train.optimizer={RMSprop: {learning_rate: 0}}"], "learning_rate: expected a positive number"),
    (["run", "mnist", "train.optimizer={RMSprop: {learning_rate: .nan}}"], "learning_rate: expected a finite number"),
    (["run", "mnist", "train.optimizer={RMSprop: {learning_rate: fast}}"], "received 'fast' (string)"),
    (["run", "mnist", f"train.optimizer={{RMSprop: {{learning_rate: {10**400}}}}}"], "expected a finite number"),
]

# {tmp}/a.yaml: a config that gives one key twice (YAML itself keeps the last without a word)
DUPLICATE_KEY = "extends: mnist\nname: twice\ntrain:\n  epochs: 3\n  epochs: 30\n"


@pytest.mark.parametrize("argv, fragment", CORPUS, ids=[" ".join(a) for a, _ in CORPUS])
def test_a_user_mistake_is_one_line_and_exit_2(argv, fragment, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "cache"))
    results = tmp_path / "results"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    (tmp_path / "a.yaml").write_text(DUPLICATE_KEY)
    if argv == ["compare"]:  # a run folder whose metrics.json was cut
        (results / "mnist" / "20260101-000000_full").mkdir(parents=True)
        (results / "mnist" / "20260101-000000_full" / "metrics.json").write_text('{"status": "compl')
    code, out, err = cli("--results-dir", results, *argv)
    assert code == 2, (code, out[-300:], err[-500:])
    assert out == "" and err.count("\n") == 1 and err.startswith("cnnlab: error: "), (out, err)
    assert "Traceback" not in err and fragment in err, err
    written = [p for p in results.rglob("*") if p.is_file() and p.name != "metrics.json"] if results.exists() else []
    assert written == []  # nothing half-written


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("CNNLAB_BACKUP_SECONDS", "soon", "CNNLAB_BACKUP_SECONDS"),
        ("CNNLAB_HEARTBEAT_SECONDS", "often", "CNNLAB_HEARTBEAT_SECONDS"),
    ],
)
def test_a_bad_environment_variable_is_one_line(name, value, fragment, cli, tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "cache"))
    command = (
        [
            "reproduce",
            "mnist",
            "--seeds",
            "1",
            "--data-dir",
            str(data_dir),
            "data.train_subset=50",
            "data.test_subset=20",
            "train.epochs=1",
        ]
        if name == "CNNLAB_HEARTBEAT_SECONDS"
        else [
            "run",
            "mnist",
            "data.train_subset=50",
            "data.test_subset=20",
            "train.epochs=1",
            "--data-dir",
            str(data_dir),
            "--verbose",
            "0",
        ]
    )
    code, out, err = cli("--results-dir", tmp_path / "results", *command)
    assert code == 2 and err.count("\n") == 1 and fragment in err and "Traceback" not in err, (out, err)


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("KERAS_BACKEND", "foo", "KERAS_BACKEND: 'foo' is not a backend cnnlab runs under (tensorflow, jax, torch)"),
        ("KERAS_BACKEND", "numpy", "KERAS_BACKEND: 'numpy' is not a backend cnnlab runs under"),
        ("KERAS_BACKEND", "jax-not-here", "KERAS_BACKEND: backend 'jax' is not installed in this environment"),
        ("KERAS_HOME", "{tmp}/keras_home", "keras.json: backend: 'tensorflw' is not a backend cnnlab runs under"),
        ("CNNLAB_CACHE_DIR", "{tmp}/a.yaml", "CNNLAB_CACHE_DIR: {tmp}/a.yaml is a file, not a folder"),
        (
            "CNNLAB_CACHE_DIR",
            "{tmp}/a.yaml/sub",
            "CNNLAB_CACHE_DIR: {tmp}/a.yaml/sub cannot be a folder: {tmp}/a.yaml is",
        ),
        ("CNNLAB_RESULTS_DIR", "{tmp}/a.yaml", "CNNLAB_RESULTS_DIR: {tmp}/a.yaml is a file, not a folder"),
    ],
)
def test_a_bad_setting_of_the_environment_is_one_line_before_keras(name, value, fragment, cli, tmp_path, monkeypatch):
    """Checked by the entry point before anything imports Keras, whose own failures are a ValueError ('Unable to
    import backend : foo') or a ModuleNotFoundError from its tree utilities; the folders' were NotADirectoryError
    tracebacks from the backup callback's first write."""
    from cnnlab import paths

    (tmp_path / "a.yaml").write_text(DUPLICATE_KEY)
    (tmp_path / "keras_home").mkdir()
    (tmp_path / "keras_home" / "keras.json").write_text('{"backend": "tensorflw"}')
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNLAB_RESULTS_DIR", str(tmp_path / "results"))
    if name == "KERAS_HOME":
        monkeypatch.delenv("KERAS_BACKEND", raising=False)
    if value == "jax-not-here":  # a backend whose package is missing (every backend is installed in CI)
        value = "jax"
        monkeypatch.setitem(paths._BACKEND_PACKAGE, "jax", "cnnlab_no_such_package")
    monkeypatch.setenv(name, value.replace("{tmp}", str(tmp_path)))
    code, out, err = cli("run", "mnist", "train.epochs=1", "data.train_subset=10")
    assert code == 2, (code, out[-300:], err[-500:])
    assert out == "" and err.count("\n") == 1 and err.startswith("cnnlab: error: "), (out, err)
    assert fragment.replace("{tmp}", str(tmp_path)) in err, err
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_learning_rate_written_as_an_integer_or_with_yaml_12s_exponent_builds():
    """`learning_rate: 1` is YAML's integer, which Keras 3 refuses ('should be float'); `1e-4` was PyYAML's
    string (YAML 1.1 wants `1.0e-4`). Both now reach the optimizer as the float the user meant."""
    from cnnlab.config import keras_specs
    from cnnlab.config.experiment import load

    exp = load("mnist", ["train.optimizer={RMSprop: {learning_rate: 1}}"])
    assert float(keras_specs.make("optimizer", exp.config.train.optimizer).learning_rate) == 1.0
    exp = load("mnist", ["train.optimizer={RMSprop: {learning_rate: 1e-4}}"])
    assert exp.config.train.optimizer.kwargs["learning_rate"] == 1e-4
