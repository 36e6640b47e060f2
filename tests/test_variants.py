"""Variants (`name:variant`), `extends:`, `--sweep`, restore-best testing, and run sets reported as mean ± std."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from conftest import MNIST_YAML

from cnnlab.cli import sweep_overrides
from cnnlab.config.experiment import experiment_refs, load
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.report.compare import aggregate, run_set, write_summary

# configs/mnist.yaml with its own variants replaced by two (appending a second `variants:` key to the text is a
# duplicate key, which the loader refuses)
VARIANTS = yaml.safe_dump(
    {
        **yaml.safe_load(MNIST_YAML),
        "variants": {
            "wide": {"description": "a wider first layer", "model.layers.0.Conv2D.filters": 64},
            "short": {"train.epochs": 1},
        },
    },
    sort_keys=False,
)


def test_variant_applies_its_overrides_and_names_the_results(write_config):
    path = write_config(VARIANTS)
    wide = load(f"{path}:wide").config
    assert wide.name == "mnist_wide" and wide.description == "a wider first layer"
    assert wide.model.layers[0].kwargs["filters"] == 64 and not wide.variants
    base = load(path).config
    assert (
        base.name == "mnist"
        and base.model.layers[0].kwargs["filters"] == 32
        and set(base.variants) == {"wide", "short"}
    )
    assert load(f"{path}:short", ["train.epochs=3"]).config.train.epochs == 3  # CLI overrides come last
    assert load(f"{path}:short", profile="quick").config.train.epochs == 2  # quick profile over the variant


def test_unknown_variant_names_the_known_ones(write_config):
    path = write_config(VARIANTS)
    with pytest.raises(ConfigError, match=r"no variant 'wdie' \(did you mean 'wide'\?\); known: short, wide"):
        load(f"{path}:wdie")


def test_a_bad_value_in_a_variant_is_blamed_on_the_variant(write_config):
    path = write_config(VARIANTS.replace("train.epochs: 1", "train.epochs: many"))
    with pytest.raises(ConfigError) as err:
        load(f"{path}:short")
    assert "variant short train.epochs='many'" in str(err.value) and "expected an integer" in str(err.value)


def test_extends_merges_the_parent_and_refuses_cycles(write_config):
    write_config(MNIST_YAML, "base.yaml")
    child = write_config("extends: base.yaml\nname: child\ntrain: {epochs: 7}\n", "child.yaml")
    cfg = load(child).config
    assert cfg.name == "child" and cfg.train.epochs == 7 and cfg.train.batch_size == 64  # merged key by key
    assert cfg.model == load(write_config(MNIST_YAML, "again.yaml")).config.model
    write_config("extends: b.yaml\nname: a\n", "a.yaml")
    loop = write_config("extends: a.yaml\nname: b\n", "b.yaml")
    with pytest.raises(ConfigError, match=r"a.yaml: extends: 'b.yaml' extends this file again \(a cycle\)"):
        load(loop)


def test_every_variant_of_the_repository_is_an_experiment():
    refs = experiment_refs()
    assert refs["imdb_capacity_smaller"] == "imdb_capacity:smaller" and refs["mnist"] == "mnist"
    for name, ref in refs.items():
        assert load(ref).config.name == name


def test_sweep_expands_lists_ranges_and_combinations():
    assert sweep_overrides([]) == [[]]
    assert sweep_overrides(["seed=1,2"]) == [["seed=1"], ["seed=2"]]
    assert sweep_overrides(["data.options.fold=0..2", "seed=5"]) == [
        ["data.options.fold=0", "seed=5"],
        ["data.options.fold=1", "seed=5"],
        ["data.options.fold=2", "seed=5"],
    ]
    with pytest.raises(CnnlabError, match="a range is FIRST..LAST"):
        sweep_overrides(["seed=3..1"])
    with pytest.raises(CnnlabError, match="expected KEY=V1,V2"):
        sweep_overrides(["seed"])


def _fake_run(root, experiment, run_id, seed, value, overrides=(), profile="full", fold=None):
    run = root / experiment / run_id
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "experiment": experiment,
                "run_id": run_id,
                "profile": profile,
                "overrides": list(overrides),
                "seed": seed,
                "repeat": {"seed": seed, "fold": fold},
                "finished_at": "2026-11-22T00:00:00Z",
                "measured": {"test_accuracy": value},
                "timing": {},
                "environment": {},
            }
        )
    )
    (run / "history.csv").write_text("epoch,val_accuracy\n1,0.5\n")
    return run


def test_runs_differing_by_seed_or_fold_form_one_set(tmp_path):
    root = tmp_path / "results"
    _fake_run(root, "mnist", "20260101-000000_full", 1, 0.10)  # replaced by the newer seed 1
    _fake_run(root, "mnist", "20260102-000000_full", 1, 0.98)
    _fake_run(root, "mnist", "20260103-000000_full", 2, 0.99, ["seed=2"])
    _fake_run(root, "mnist", "20260104-000000_full", 3, 0.97, ["seed=3"])
    _fake_run(root, "mnist", "20260105-000000_quick", 1, 0.50, profile="quick")  # another setting: not mixed in
    _fake_run(root, "mnist", "20260106-000000_full", 1, 0.20, ["train.epochs=1"])  # another setting too
    members = run_set(root, "mnist")
    assert sorted(m["seed"] for _, m in members) == [1, 2, 3]
    mean, std, n = aggregate(members)["test_accuracy"]
    assert n == 3 and mean == pytest.approx(0.98) and std == pytest.approx(0.01)  # sample std of .98 .99 .97
    write_summary(root)
    with open(root / "summary.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["experiment"] == "mnist" and r["metric"] == "test_accuracy")
    assert row["n_runs"] == "3" and row["seeds"] == "1 2 3" and float(row["measured"]) == pytest.approx(0.98)
    assert float(row["measured_std"]) == pytest.approx(0.01)
    assert "0.9800 ± 0.0100 (n=3)" in (root / "summary.md").read_text()
    report = (root / "README.md").read_text()  # the generated report: one line per experiment
    line = next(ln for ln in report.splitlines() if ln.startswith("| [mnist]"))
    # the accepted range is 0.9890-0.9931 (binomial around 0.9913 and 0.9908): the mean 0.98 is below it, but with
    # 3 repeats its 95% interval 0.98 ± 4.303 · 0.01 / √3 reaches it, so the rule says "within the noise"
    assert (
        "| 0.9800 ± 0.0100 (n=3) | within the noise (mean below; 95% interval [0.9552, 1.0048] reaches the range) |"
    ) in line and "(mnist/20260104-000000_full/)" in line


def test_restore_best_tests_the_best_validation_epoch(cli, data_dir, tmp_path):
    results = tmp_path / "results"
    code, out, err = cli(
        "--results-dir",
        results,
        "run",
        "mnist",
        "data.train_subset=300",
        "data.test_subset=100",
        "train.epochs=3",
        "train.restore_best=true",
        "data.validation=split",
        "data.validation_split=0.1",
        "--data-dir",
        data_dir,
        "--verbose",
        "0",
    )
    assert code == 0, err
    (run,) = (results / "mnist").glob("2*")
    m = json.loads((run / "metrics.json").read_text())
    with open(run / "history.csv") as f:
        val = [float(r["val_accuracy"]) for r in csv.DictReader(f)]
    last_best = max(i for i, v in enumerate(val, 1) if v == max(val))  # ties: the later epoch, as Kim's code
    assert m["test_weights"] == f"best validation epoch (val_accuracy = {max(val):.4f} at epoch {last_best})"


def test_restore_best_without_validation_is_refused(mnist_config):
    with pytest.raises(ConfigError, match="train.restore_best: needs validation data"):
        load(mnist_config(), ["train.restore_best=true", "data.validation_split=0", "data.validation=split"])


def test_a_fold_given_by_the_config_or_by_an_override_is_one_fold(tmp_path):
    root = tmp_path / "results"
    _fake_run(root, "kim_mr", "20260101-000000_full", 1, 0.70, fold=0)  # the config's fold 0
    _fake_run(root, "kim_mr", "20260102-000000_full", 1, 0.76, ["data.options.fold=0"], fold=0)  # the same fold
    _fake_run(root, "kim_mr", "20260103-000000_full", 1, 0.78, ["data.options.fold=1"], fold=1)
    members = run_set(root, "kim_mr")
    assert sorted(m["repeat"]["fold"] for _, m in members) == [0, 1]
    assert aggregate(members)["test_accuracy"][0] == pytest.approx(0.77)  # the newer fold-0 run counts, once


def test_compare_two_result_sets_flags_deltas_beyond_the_seed_spread(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for i, (va, vb) in enumerate([(0.980, 0.960), (0.982, 0.962), (0.981, 0.961)], start=1):  # B 0.02 lower
        _fake_run(a, "mnist", f"2026010{i}-000000_full", i, va, [f"seed={i}"])
        _fake_run(b, "mnist", f"2026010{i}-000000_full", i, vb, [f"seed={i}"])
        _fake_run(a, "mnist_dense", f"2026010{i}-000000_full", i, 0.97 + i / 1000, [f"seed={i}"])
        _fake_run(b, "mnist_dense", f"2026010{i}-000000_full", i, 0.97 + (4 - i) / 1000, [f"seed={i}"])  # same mean
    _fake_run(a, "mnist_no_pooling", "20260101-000000_full", 1, 0.99)
    code, out, err = cli("compare", a, b, "--out", tmp_path / "ab.md")
    assert code == 0, err
    rows = {line.split(" | ")[0].lstrip("| "): line for line in out.splitlines() if "test_accuracy" in line}
    assert "| -0.0200 | **beyond spread** |" in rows["mnist"]  # std 0.001 each: a real difference
    assert "| +0.0000 | within spread |" in rows["mnist_dense"]
    assert "only in A" in out and (tmp_path / "ab.md").read_text() == out
    code, _, err = cli("compare", a)
    assert code == 2 and "compare takes two result folders" in err
    # --check gates on it: exit 1 naming the difference; the same sets without mnist pass
    code, _, err = cli("compare", a, b, "--check")
    assert code == 1 and err.count("\n") == 1 and "mnist test_accuracy: B − A = -0.0200 beyond the spread" in err
    assert "mnist_dense" not in err
    assert (tmp_path / "ab_curves" / "mnist.png").is_file() and "[mnist.png](ab_curves/mnist.png)" in out


def test_compare_marks_two_settings_instead_of_a_delta(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _fake_run(a, "mnist", "20260101-000000_full", 1, 0.99)
    _fake_run(b, "mnist", "20260101-000000_quick", 1, 0.85, profile="quick")  # a 2-epoch quick run
    code, out, err = cli("compare", a, b, "--check")
    row = next(line for line in out.splitlines() if line.startswith("| mnist | test_accuracy"))
    assert "**different settings**: profile full → quick" in row and "no spread" not in row
    assert code == 1 and "mnist test_accuracy: different settings (profile full → quick)" in err


def test_the_config_hash_follows_what_decides_the_numbers_only():
    base = load("mnist").config_hash()
    assert load("mnist", ["report.group=another table", "description=new words"]).config_hash() == base
    assert load("mnist", ["reference=[]"]).config_hash() == base
    assert load("mnist", ["train.epochs=6"]).config_hash() != base
    assert load("mnist", ["seed=2"]).config_hash() != base
    assert load("mnist", ["data.validation_split=0.2", "data.validation=split"]).config_hash() != base
