"""`cnnlab reproduce`: selection, plan with seeds, skip-if-complete, failure isolation, Ctrl-C, dry run, and one
real end-to-end run of a tiny MNIST config in a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from cnnlab.batch import reproduce
from cnnlab.batch.reproduce import Job, Outcome
from cnnlab.errors import CnnlabError

REPO = Path(__file__).resolve().parent.parent
REFS = {
    "mnist": "mnist",
    "mnist_dense": "mnist_dense",
    "imdb_capacity": "imdb_capacity",
    "imdb_capacity_smaller": "imdb_capacity:smaller",
    "kim_mr": "kim_mr",
    "kim_mr_static": "kim_mr:static",
}
STARTED = re.compile(r"\[\d+/\d+\] \S+ seed \d+(?: fold \d+)?: started \(elapsed \d+:\d\d:\d\d[,)]")


@pytest.fixture
def configs(tmp_path, monkeypatch) -> Path:
    """A configs dir with a tiny mnist (200 train / 50 test images, 1 epoch, variant 'narrow') and mnist_dense."""
    raw = yaml.safe_load((REPO / "configs" / "mnist.yaml").read_text())
    raw["data"].update(train_subset=200, test_subset=50)
    raw["train"]["epochs"] = 1
    raw.pop("report", None)  # no comparison group: the summary draws no group plot from the fake runs
    raw["variants"] = {"narrow": {"model.layers.0.Conv2D.filters": 8}}
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "mnist.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    dense = yaml.safe_load((REPO / "configs" / "mnist_dense.yaml").read_text())
    dense.pop("report", None)
    dense.pop("variants", None)  # only mnist's one variant: the known names stay three
    (folder / "mnist_dense.yaml").write_text(yaml.safe_dump(dense, sort_keys=False))
    monkeypatch.setenv("CNNLAB_CONFIGS_DIR", str(folder))
    return folder


@pytest.fixture
def rcli(cli, monkeypatch):
    """The `cli` fixture with `reproduce` registered, whether or not cli.py registers it already."""
    import cnnlab.cli as cli_mod

    original = cli_mod.parser

    def parser():
        p = original()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        if "reproduce" not in sub.choices:
            reproduce.add_parser(sub)
        return p

    monkeypatch.setattr(cli_mod, "parser", parser)
    return cli


@pytest.fixture
def ctrl_c():
    """Ctrl-C raises KeyboardInterrupt in this process, as in a terminal, also where pytest was started in the
    background (a non-interactive shell starts background jobs with SIGINT ignored, and os.kill(SIGINT) would
    then do nothing)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def commit(monkeypatch):
    """The current commit as cnnlab.meta.git_commit reports it; set `.value` to pretend another."""

    class Commit:
        value = "c0ffee"

    monkeypatch.setattr("cnnlab.store.meta.git_commit", lambda root: Commit.value)
    return Commit


class FakeEngine:
    """A stand-in for cnnlab.batch.ray_engine.RayEngine (a test double for the batch's loop, not for Ray, which
    tests/test_ray_engine.py runs for real): `run_job(job, results_root, log_stem, data_dir)` runs at submit, in
    this process; its outcome is reported at the next wait. `slots` slots; what the command line asked for in
    `asked`."""

    description = ""  # no 'engine:' line: the tests read the batch's lines by position

    def __init__(self, run_job, **asked):
        self.run_job, self.asked = run_job, asked
        count = asked.get("slots") or len(asked.get("devices") or []) or 1
        self.slots = [f"ray {k + 1}" for k in range(count)]
        self.done, self.submitted, self.cancelled, self.closed, self.released = [], [], False, False, []

    def submit(self, slot, job, log_stem):
        self.submitted.append((slot, job.seed))
        self.done.append((slot, self.run_job(job, self.asked["results_root"], log_stem, self.asked["data_dir"])))

    def wait(self, timeout):
        done, self.done = self.done, []
        return done

    def release(self, slot):
        self.released.append(slot)

    def cancel(self, grace):
        self.cancelled = True

    def close(self):
        self.closed = True


def use_engine(monkeypatch, run_job) -> list[FakeEngine]:
    """Make the command line's engine a FakeEngine running `run_job`; the engines made, for the test to read."""
    made = []

    def factory(**asked):
        made.append(FakeEngine(run_job, **asked))
        return made[-1]

    monkeypatch.setattr("cnnlab.batch.ray_engine.RayEngine", factory)
    return made


@pytest.fixture
def fake_runs(monkeypatch):
    """The engine's runs replaced: each job recorded, 'complete' returned (or what `script[name, seed]` says: an
    Outcome, or 'interrupt' for a Ctrl-C while it runs)."""
    calls, script = [], {}

    def run_job(job, results_root, log_stem, data_dir=None):
        calls.append(job)
        outcome = script.get((job.name, job.seed), "complete")
        if outcome == "interrupt":
            raise KeyboardInterrupt
        if isinstance(outcome, Outcome):
            return outcome
        return Outcome(
            "complete", 1.5, run_id=f"fake_{job.name}_{job.seed}", exit_code=0, headline="test_accuracy 0.5000"
        )

    engines = use_engine(monkeypatch, run_job)
    # the data as they load now: what fake_complete_run records (the real fingerprint: the end-to-end test)
    monkeypatch.setattr(reproduce, "data_fingerprint", lambda job, data_dir, memo: f"fp-{job.name}")
    return calls, script, engines


def fake_complete_run(results: Path, job: Job, git_commit: str, run_id: str = "20240101-000000_full") -> Path:
    from cnnlab.train.precision import expected_policy

    run = results / job.name / run_id
    run.mkdir(parents=True)
    if job.experiment is not None:  # a run's own config, as the runner writes it (what an estimate compares)
        (run / "config.yaml").write_text(job.experiment.resolved_yaml())
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "experiment": job.name,
                "run_id": run_id,
                "status": "complete",
                "profile": job.profile,
                "overrides": list(job.overrides),
                "config_hash": job.config_hash,
                "seed": job.seed,
                "measured": {"test_accuracy": 0.9},
                "timing": {"wall_seconds": 42.0},
                # what the job's precision becomes on this machine (mnist.yaml's auto: bfloat16 on AMX)
                "precision": {"requested": job.precision, "policy": expected_policy(job.precision) or "float32"},
                "data": {"fingerprint": f"fp-{job.name}"},
                "environment": {"git_commit": git_commit, **reproduce.current_software()},
            }
        )
    )
    return run


# ------------------------------------------------------------------------------------------------ selection


def test_select_by_name_variant_and_glob_keeps_order_without_duplicates():
    assert reproduce.select(REFS, []) == list(REFS.values())
    assert reproduce.select(REFS, ["imdb_capacity"]) == ["imdb_capacity"]  # a plain name: not its variants
    assert reproduce.select(REFS, ["imdb_capacity:smaller"]) == ["imdb_capacity:smaller"]
    assert reproduce.select(REFS, ["imdb_capacity_smaller"]) == ["imdb_capacity:smaller"]
    assert reproduce.select(REFS, ["kim_*", "mnist", "kim_mr"]) == ["kim_mr", "kim_mr:static", "mnist"]
    assert reproduce.select(REFS, ["imdb_capacity*"]) == ["imdb_capacity", "imdb_capacity:smaller"]


@pytest.mark.parametrize(
    "pattern, says",
    [
        ("mnsit", "unknown experiment 'mnsit' (did you mean 'mnist'?)"),
        ("kim_mr:dynamic", "unknown experiment 'kim_mr:dynamic'"),
        ("vgg*", "no experiment matches 'vgg*'"),
    ],
)
def test_select_unknown_names_the_pattern_and_the_known_ones(pattern, says):
    with pytest.raises(CnnlabError) as err:
        reproduce.select(REFS, ["mnist", pattern])
    assert says in str(err.value) and "known: mnist, mnist_dense, imdb_capacity" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_experiment_on_the_command_line_is_one_line_before_anything_runs(rcli, configs, fake_runs, tmp_path):
    code, out, err = rcli("--results-dir", tmp_path / "results", "reproduce", "mnist", "mnsit")
    assert code == 2 and out == "" and not fake_runs[0]
    assert err.strip() == (
        "cnnlab: error: reproduce: unknown experiment 'mnsit' (did you mean 'mnist'?); "
        "known: mnist, mnist_narrow, mnist_dense"
    )
    code, _, err = rcli("--results-dir", tmp_path / "results", "reproduce", "mnist", "train.epoch=2")
    assert code == 2 and "unknown key 'epoch'" in err and not fake_runs[0]
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------------------------------------ plan


def test_plan_one_seed_is_the_configs_own_many_seeds_are_overrides(configs):
    (job,) = reproduce.plan(["mnist"])
    assert (job.ref, job.name, job.seed, job.overrides, job.profile) == ("mnist", "mnist", 1, (), "full")
    jobs = reproduce.plan(["mnist", "mnist:narrow"], ["train.epochs=2"], seeds=3, profile="quick")
    assert [(j.name, j.seed, j.overrides) for j in jobs] == [
        (name, k, ("train.epochs=2", f"seed={k}")) for name in ("mnist", "mnist_narrow") for k in (1, 2, 3)
    ]
    assert len({j.config_hash for j in jobs}) == 6
    # seed=1 is the config's own seed: the same resolved config as no override, hence the same hash
    assert reproduce.plan(["mnist"], ["seed=1"])[0].config_hash == job.config_hash
    assert reproduce.plan(["mnist"], seeds=2)[0].config_hash == job.config_hash
    with pytest.raises(CnnlabError, match="contradict"):
        reproduce.plan(["mnist"], ["seed=4"], seeds=2)
    with pytest.raises(CnnlabError, match="--seeds: expected a positive integer"):
        reproduce.plan(["mnist"], seeds=0)


# ------------------------------------------------------------------------------------------------ skip if complete


def _numeric_code() -> dict:
    from cnnlab.store import meta

    return {rel: meta._digest(meta.PACKAGE / rel) for rel in ("train/runner.py", "data/__init__.py", "cli.py")}


SOFTWARE = {"keras": "3.15.1", "backend": "jax"}
RUN = {
    "status": "complete",
    "config_hash": "h1",
    "profile": "full",
    "code": _numeric_code(),
    "precision": {"requested": "auto", "policy": "float32"},
    "data": {"fingerprint": "d1"},
    "environment": {"git_commit": "old-dirty", **SOFTWARE},
}


def _today(commit="abc", policy="float32", data="d1", **software):
    return reproduce.Today(
        commit, {**SOFTWARE, **software}, fingerprint=lambda job: data, policy=lambda requested: policy
    )


def _with(**changes) -> dict:
    """RUN with top-level keys replaced; 'code.<file>' / 'env.<key>' / 'data' change one entry."""
    run = json.loads(json.dumps(RUN))
    for key, value in changes.items():
        where, _, leaf = key.partition("__")
        if leaf:
            run[where][leaf.replace("_py", ".py")] = value
        else:
            run[key] = value
    return run


@pytest.mark.parametrize(
    "run, today, why",
    [
        (RUN, _today(), None),  # everything the same: reused
        (RUN, _today(commit="def-dirty"), None),  # the commit is not the key
        (RUN, _today(commit=None), None),  # nor is having git at all
        (_with(code__cli_py="0" * 16), _today(), None),  # the command line computes no number
        (_with(**{"code__train/runner.py": "0" * 16}), _today(), "code changed since (train/runner.py)"),
        (_with(code__no_such_module_py="0" * 16), _today(), "code changed since (no_such_module.py)"),  # gone
        (_with(status="failed"), _today(), "not complete"),
        (_with(profile="quick"), _today(), "profile quick"),
        (_with(config_hash="h2"), _today(), "its config differs"),
        (RUN, _today(keras="3.16.0"), "Keras 3.15.1, now 3.16.0"),
        (RUN, _today(backend="torch"), "backend jax, now torch"),
        # 'auto' on an AMX machine takes the float32 run another machine made (the study found them equivalent)
        (RUN, _today(policy="mixed_bfloat16"), None),
        (RUN, _today(policy=None), None),  # a GPU whose capability is unknown
        (_with(precision={}, dtype_policy="mixed_bfloat16"), _today(), None),  # and the reverse, on an older record
        # but never a policy auto cannot choose
        (
            _with(precision={"requested": "mixed_float16", "policy": "mixed_float16"}),
            _today(),
            "precision mixed_float16, now float32",
        ),
        (RUN, _today(data="d2"), "the data differ"),
        (RUN, _today(data=None), "the data cannot be loaded now"),
        (_with(data={"dataset": "mnist"}), _today(), "no data fingerprint recorded"),
        # before the code record: only the same clean commit identifies the code
        (_with(code=None, environment={"git_commit": "abc", **SOFTWARE}), _today(), None),
        (
            _with(code=None, environment={"git_commit": "abc", **SOFTWARE}),
            _today(commit="def"),
            "made by other code (commit abc)",
        ),
        (
            _with(code=None, environment={"git_commit": "abc-dirty", **SOFTWARE}),
            _today(commit="abc-dirty"),
            "made by other code (commit abc-dirty)",
        ),  # a dirty tree is never the same code
    ],
)
def test_skip_key_table(run, today, why):
    job = Job("mnist", "mnist", 1, (), "full", "h1", precision="auto")
    assert reproduce.stale(job, run, today) == why
    assert reproduce.is_complete(job, [("r1", run)], today) == ("r1" if why is None else None)


@pytest.mark.parametrize("asked", ["float32", "mixed_bfloat16"])
def test_an_explicit_precision_request_needs_its_own_policy(asked):
    """`train.precision=float32` (the precision study's float32 arm, a bit-for-bit comparison) is not `auto`: a
    run in the other policy does not count, in either direction; the dry run and the skip line say which it took."""
    other = "mixed_bfloat16" if asked == "float32" else "float32"
    job = Job("mnist", "mnist", 1, (), "full", "h1", precision=asked)
    run = _with(precision={"requested": other, "policy": other})
    assert reproduce.stale(job, run, _today(policy=asked)) == f"precision {other}, now {asked}"
    assert reproduce.stale(job, _with(precision={"requested": asked, "policy": asked}), _today(policy=asked)) is None
    auto = Job("mnist", "mnist", 1, (), "full", "h1", precision="auto")
    assert reproduce.skip_note("r1", [("r1", run)], auto, _today(policy=asked)) == (
        f"(complete: r1; {other}, which auto also takes)"
    )
    assert reproduce.skip_note("r1", [("r1", run)], auto, _today(policy=other)) == "(complete: r1)"


def test_auto_choices_are_what_auto_can_resolve_to():
    """AUTO_CHOICES (the batch's list, kept without importing the training package) against train.precision's
    resolve over every kind of machine: CPU flags both ways, GPUs old and new."""
    from cnnlab.train.precision import resolve

    got = {
        resolve("auto", flags=flags, gpus=gpus).policy
        for flags in ([], ["amx_bf16"], ["avx512_bf16"])
        for gpus in ([], [(7, 5)], [(8, 0)], [(9, 0), (7, 0)])
    }
    assert got == set(reproduce.AUTO_CHOICES)


def test_is_complete_takes_the_newest_run_that_counts_and_loads_the_data_only_for_a_match():
    job = Job("mnist", "mnist", 1, (), "full", "h1", precision="auto")
    asked = []
    today = reproduce.Today("abc", SOFTWARE, fingerprint=lambda j: asked.append(j) or "d1", policy=lambda r: "float32")
    assert reproduce.is_complete(job, [("r1", RUN), ("r2", RUN), ("r3", _with(config_hash="h9"))], today) == "r2"
    assert len(asked) == 1  # r3 differs before the data are asked
    assert reproduce.is_complete(job, [("r1", _with(profile="quick"))], today) is None and len(asked) == 1


def test_not_numeric_names_existing_report_and_batch_files_only():
    from cnnlab.store import meta

    assert all((meta.PACKAGE / rel).is_file() for rel in meta.NOT_NUMERIC)  # no stale names
    # the batch and the report sit above training (ARCHITECTURE.md): none of their modules computes a number a
    # run records, and a new one left out would break every vouched equivalence (today's tree gains a file)
    above = {
        p.relative_to(meta.PACKAGE).as_posix() for d in ("batch", "report") for p in (meta.PACKAGE / d).glob("*.py")
    }
    assert above - {"batch/__init__.py", "report/__init__.py"} <= meta.NOT_NUMERIC
    for numeric in (
        "train/runner.py",
        "lectures/arith.py",  # params.csv receptive fields
        "config/experiment.py",
        "models/stack.py",
        "data/__init__.py",
        "data/mnist.py",
        "train/backup.py",
        "models/keras2.py",
        "train/precision.py",
        "store/results.py",
        "direction.py",
        "train/sampling.py",
        "models/augment.py",
    ):
        assert numeric not in meta.NOT_NUMERIC


def test_data_fingerprint_is_of_the_numbers_and_kept_until_a_data_file_changes(tmp_path, monkeypatch):
    import numpy as np

    from cnnlab import data as data_mod

    a = data_mod.Arrays(
        np.zeros((4, 2), "float32"),
        np.arange(4),
        np.ones((2, 2), "float32"),
        np.arange(2),
        "from here",
        extras={"vocabulary": ["<pad>", "a"], "vectors": "read in 1.2 s"},
    )
    same = data_mod.Arrays(
        *(x.copy() for x in (a.x_train, a.y_train, a.x_test, a.y_test)),
        "from elsewhere",
        extras={"vocabulary": ["<pad>", "a"], "vectors": "from cache"},
    )
    assert data_mod.fingerprint(a) == data_mod.fingerprint(same)  # source and notes are not data
    changed = data_mod.Arrays(a.x_train, a.y_train, a.x_test + 1, a.y_test, "from here")
    assert data_mod.fingerprint(changed) != data_mod.fingerprint(a)
    reshaped = data_mod.Arrays(a.x_train.reshape(2, 4), a.y_train, a.x_test, a.y_test, "from here", extras=a.extras)
    assert data_mod.fingerprint(reshaped) != data_mod.fingerprint(a)  # the same bytes, another shape

    # the batch's side: loaded once per dataset and data directory, then read from .cache/fingerprints.json
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "f.bin").write_bytes(b"1")
    loads = []
    monkeypatch.setitem(
        data_mod.DATASETS,
        "mnist",
        data_mod.Dataset(lambda where, options: loads.append(where) or a, data_mod.DATASETS["mnist"].options, "fake"),
    )
    (job,) = reproduce.plan(["mnist"])
    print_ = reproduce.data_fingerprint(job, str(folder), {})
    assert print_ == data_mod.fingerprint(a) and len(loads) == 1
    assert reproduce.data_fingerprint(job, str(folder), {}) == print_ and len(loads) == 1  # from the cache file
    (folder / "f.bin").write_bytes(b"22")  # a data file changed
    assert reproduce.data_fingerprint(job, str(folder), {}) == print_ and len(loads) == 2


def test_code_files_records_the_loaded_package_sources_only(monkeypatch):
    import cnnlab.store.results  # noqa: F401  (loaded, so recorded)
    from cnnlab.store import meta

    monkeypatch.setattr(meta, "_DIGESTS", {})
    files = meta.code_files()
    assert files["store/meta.py"] == meta._digest(meta.PACKAGE / "store/meta.py") and "store/results.py" in files
    assert all(not k.startswith("/") and k.endswith(".py") for k in files)
    assert meta.code_changes(files) == []
    # a file edited after the process started may not be the code that runs: recorded so that it never matches
    monkeypatch.setattr(meta, "_DIGESTS", {})
    monkeypatch.setattr(meta, "_PROCESS_START", 0.0)
    edited = meta.code_files()
    assert set(edited.values()) == {meta.EDITED}
    assert meta.code_changes(edited) == sorted(set(edited) - meta.NOT_NUMERIC)


def test_a_run_from_before_a_new_schema_key_is_still_complete(tmp_path):
    from cnnlab.store import meta

    (job,) = reproduce.plan(["mnist"])
    run = tmp_path / "mnist" / "r1"
    run.mkdir(parents=True)
    from cnnlab.config.experiment import load

    resolved = load("mnist").resolved_yaml()
    assert "epochs: 5\n" in resolved
    (run / "config.yaml").write_text(
        resolved.replace("epochs: 5\n", "epochs: 5\n  precision: float32\n")
        if "precision:" not in resolved
        else resolved
    )
    code = {"store/meta.py": meta._digest(meta.PACKAGE / "store/meta.py")}
    software = {"keras": "3", "backend": "jax"}
    # its recorded hash came from an older schema (say, before train.precision): the folder's config decides
    m = {
        "status": "complete",
        "profile": "full",
        "config_hash": "older-schema",
        "code": code,
        "_dir": str(run),
        "environment": software,
        "data": {"fingerprint": "d"},
    }
    today = reproduce.Today(None, software, fingerprint=lambda job: "d", policy=lambda requested: "float32")
    assert reproduce.is_complete(job, [("r1", m)], today) == "r1"
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("epochs: 5\n", "epochs: 3\n"))
    assert reproduce.is_complete(job, [("r1", m)], today) is None


def test_complete_run_is_skipped_unless_changed_or_forced(rcli, configs, fake_runs, commit, tmp_path):
    results = tmp_path / "results"
    calls, _, _ = fake_runs
    (job,) = reproduce.plan(["mnist"])
    fake_complete_run(results, job, "c0ffee")

    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist", "mnist_dense", "--seeds", "1")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "[1/2] mnist seed 1: skipped (complete: 20240101-000000_full)"
    assert STARTED.match(lines[1]) and lines[1].startswith("[2/2] mnist_dense seed 1: started")
    assert lines[2] == "[2/2] mnist_dense seed 1: done in 1.5 s: test_accuracy 0.5000"
    assert [c.name for c in calls] == ["mnist_dense"]
    report = json.loads((results / "reproduce.json").read_text())
    assert report["status"] == "complete" and report["profile"] == "full" and report["seeds"] == 1
    assert report["selection"] == ["mnist", "mnist_dense"] and report["git_commit"] == "c0ffee"
    assert [(r["experiment"], r["status"], r.get("run_id")) for r in report["runs"]] == [
        ("mnist", "skipped", "20240101-000000_full"),
        ("mnist_dense", "complete", "fake_mnist_dense_1"),
    ]
    assert report["wall_seconds"] >= 0 and (results / "summary.md").is_file()

    calls.clear()  # a different config (override), another profile, --force, or an old run on a dirty tree: it runs
    for args in (["train.epochs=2"], ["--profile", "quick"], ["--force"]):
        code, out, _ = rcli("--results-dir", results, "reproduce", "mnist", *args, "--seeds", "1")
        assert code == 0 and "skipped (" not in out, args
    commit.value = "c0ffee-dirty"
    code, out, err = rcli("--results-dir", results, "reproduce", "mnist", "--seeds", "1")
    assert code == 0 and "skipped (" not in out
    assert [c.name for c in calls] == ["mnist"] * 4


def test_an_estimate_comes_from_a_run_of_the_same_setting_never_an_earlier_one(tmp_path):
    """SST-2's sentence-only runs timed its phrase runs 7.6 times too short (issue 18): a run of another config
    is an estimate only when it differs by seed, fold or precision request (compare.setting_digest)."""
    from cnnlab.config import experiment

    def run(folder, overrides, seconds, profile="full"):
        exp = experiment.load("mnist", overrides, profile)
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.yaml").write_text(exp.resolved_yaml())
        timing, where = {"wall_seconds": seconds}, str(tmp_path / folder)
        return folder, {"profile": profile, "config_hash": exp.config_hash(), "timing": timing, "_dir": where}

    (job,) = reproduce.plan(["mnist"], ["seed=2"])
    seed1 = run("seed1", ["seed=1"], 200.0)
    bigger_batches = run("bigger_batches", ["train.batch_size=512"], 50.0)  # another setting, at another cost
    float32 = run("float32", ["seed=3", "train.precision=float32"], 260.0)
    quick = run("quick", ["seed=2"], 5.0, "quick")
    assert reproduce.previous_seconds(job, [seed1, bigger_batches]) == 200.0  # not the newer 50 s
    assert reproduce.previous_seconds(job, [bigger_batches, quick]) is None
    assert reproduce.previous_seconds(job, [seed1, float32, bigger_batches]) == 260.0  # the newest of the setting
    exact = run("exact", ["seed=2"], 190.0)
    assert reproduce.previous_seconds(job, [exact, float32]) == 190.0  # the same config first, however old
    # the model's cells the same way: a run counts where its config costs what today's does
    same = reproduce.same_cost_as_today({"mnist": "mnist"})
    assert same("mnist", tmp_path / "seed1") and same("mnist", tmp_path / "float32")
    assert not same("mnist", tmp_path / "bigger_batches") and not same("mnist", tmp_path / "quick")
    assert not same("mnist", tmp_path / "no_such_run")


def test_estimate_uses_the_previous_duration_of_the_same_config_else_the_batch_mean():
    a, b, c = (Job(n, n, 1, (), "full", n + "h") for n in ("a", "b", "c"))
    runs = [
        ("r1", {"profile": "quick", "config_hash": "x", "timing": {"wall_seconds": 5.0}}),  # oldest first
        ("r2", {"profile": "full", "config_hash": "ah", "timing": {"wall_seconds": 60.0}}),
        ("r3", {"profile": "full", "config_hash": "other", "timing": {"wall_seconds": 100.0}}),
    ]
    assert reproduce.previous_seconds(a, runs) == 60.0
    assert reproduce.previous_seconds(b, runs) is None  # another config, whose cost is unknown: no estimate
    assert reproduce.previous_seconds(c, runs[:1]) is None
    assert reproduce.estimate_left([a, b], {a: 60.0, b: 100.0}, []) == 160.0
    assert reproduce.estimate_left([a, c], {a: 60.0}, []) is None
    assert reproduce.estimate_left([a, c], {a: 60.0}, [10.0, 30.0]) == 80.0
    assert reproduce.hms(4 * 60 + 12) == "0:04:12" and reproduce.hms(3600 + 630.4) == "1:10:30"


# ------------------------------------------------------------------------------------------------ failures


def test_a_failing_run_does_not_stop_the_batch(rcli, configs, fake_runs, commit, tmp_path):
    results = tmp_path / "results"
    calls, script, _ = fake_runs
    script[("mnist_dense", 1)] = Outcome("failed", 0.2, exit_code=2, reason="data/mnist: no such file", log="l1")
    script[("mnist_dense", 2)] = Outcome("failed", 0.4, exit_code=1, reason="MemoryError: out of memory")
    code, out, err = rcli("--results-dir", results, "reproduce", "mnist_dense", "--seeds", "3")
    assert code == 1, out + err
    lines = out.splitlines()
    assert lines[1] == "[1/3] mnist_dense seed 1: FAILED (exit 2): data/mnist: no such file"
    assert lines[3] == "[2/3] mnist_dense seed 2: FAILED (exit 1): MemoryError: out of memory"
    # the estimate: the mean of the two finished runs, 0.3 s
    assert lines[4].startswith("[3/3] mnist_dense seed 3: started") and STARTED.match(lines[4])
    assert "about 0:00:00 left" in lines[4]
    assert lines[5] == "[3/3] mnist_dense seed 3: done in 1.5 s: test_accuracy 0.5000"
    assert "2 failed:" in out and "mnist_dense  1     2     data/mnist: no such file" in out
    report = json.loads((results / "reproduce.json").read_text())
    assert report["status"] == "failed" and report["counts"] == {"failed": 2, "complete": 1}
    failed = [r for r in report["runs"] if r["status"] == "failed"]
    assert [(r["seed"], r["exit_code"], r["reason"]) for r in failed] == [
        (1, 2, "data/mnist: no such file"),
        (2, 1, "MemoryError: out of memory"),
    ]
    assert failed[0]["log"] == "l1" and report["runs"][2]["run_id"] == "fake_mnist_dense_3"
    assert [c.seed for c in calls] == [1, 2, 3]


def test_retry_failed_runs_what_the_last_batch_says_failed(rcli, configs, fake_runs, commit, tmp_path):
    results = tmp_path / "results"
    calls, script, _ = fake_runs
    code, _, err = rcli("--results-dir", results, "reproduce", "mnist_dense", "--seeds", "3", "--retry-failed")
    assert code == 2 and "--retry-failed" in err and "no earlier batch" in err and not calls
    script[("mnist_dense", 2)] = Outcome("failed", 0.4, exit_code=1, reason="killed")
    assert rcli("--results-dir", results, "reproduce", "mnist_dense", "--seeds", "3")[0] == 1
    calls.clear()
    script.clear()
    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist_dense", "--seeds", "3", "--retry-failed")
    assert code == 0 and [c.seed for c in calls] == [2] and out.startswith("[1/1] mnist_dense seed 2: started")
    report = json.loads((results / "reproduce.json").read_text())
    assert "--retry-failed" in report["command"] and report["counts"] == {"complete": 1}
    (results / "reproduce.json").write_text("{not json")
    code, _, err = rcli("--results-dir", results, "reproduce", "mnist_dense", "--retry-failed")
    assert code == 2 and "cannot read the last batch" in err and err.count("\n") == 1


def test_ctrl_c_records_the_rest_as_interrupted_and_exits_130(rcli, configs, fake_runs, commit, tmp_path):
    results = tmp_path / "results"
    fake_runs[1][("mnist_narrow", 1)] = "interrupt"
    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist*", "mnist_dense", "--seeds", "1")
    assert code == 130
    (engine,) = fake_runs[2]
    assert engine.cancelled and engine.closed  # the engine was told to stop its runs, then released
    report = json.loads((results / "reproduce.json").read_text())
    assert report["status"] == "interrupted"
    assert [(r["experiment"], r["status"]) for r in report["runs"]] == [
        ("mnist", "complete"),
        ("mnist_narrow", "interrupted"),
        ("mnist_dense", "interrupted"),
    ]
    assert "interrupted at [2/3]" in out and not (results / "summary.md").exists()


# ------------------------------------------------------------------------------------------------ devices, slots


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "an empty item"),
        ("0,,1", "an empty item"),
        ("gpu1", "'gpu1' is neither a GPU id nor 'cpu'"),
        ("0;1", "'0;1' is neither"),
        ("-1", "'-1' is neither"),
        ("0,gpu 1", "'gpu 1' is neither"),
    ],
)
def test_devices_empty_or_malformed_is_one_line_before_anything_runs(rcli, configs, fake_runs, tmp_path, text, says):
    code, out, err = rcli(
        "--results-dir", tmp_path / "results", "reproduce", "mnist", "--devices", text, "--seeds", "1"
    )
    assert code == 2 and out == "" and not fake_runs[0] and not fake_runs[2]
    assert err.startswith(f"cnnlab: error: reproduce: --devices '{text}': {says}") and "expected GPU ids" in err
    assert err.count("\n") == 1 and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (["--slots", "0"], "--slots 0: expected a whole number >= 1"),
        (["--runs-per-gpu", "-2"], "--runs-per-gpu -2: expected a whole number >= 1"),
        (["--devices", "0", "--address", "10.0.0.1:6379"], "a cluster (--address) has its own"),
    ],
)
def test_engine_flags_are_checked_before_anything_runs(rcli, configs, fake_runs, tmp_path, args, says):
    code, out, err = rcli("--results-dir", tmp_path / "results", "reproduce", "mnist", *args)
    assert code == 2 and out == "" and says in err and err.count("\n") == 1 and not fake_runs[2]


def test_devices_parse():
    assert reproduce.parse_devices("0,1, 2,3") == ["0", "1", "2", "3"]
    assert reproduce.parse_devices("CPU,cpu") == ["cpu", "cpu"] and reproduce.parse_devices("01") == ["1"]


def test_the_flags_reach_the_engine_and_several_slots_share_the_jobs(rcli, configs, fake_runs, commit, tmp_path):
    results = tmp_path / "results"
    calls, script, engines = fake_runs
    script[("mnist_dense", 1)] = Outcome("failed", 0.2, exit_code=2, reason="data/mnist: no such file")
    code, out, err = rcli(
        "--results-dir", results, "reproduce", "mnist_dense", "--seeds", "5", "--devices", "0,cpu", "--isolate"
    )
    assert code == 1, out + err
    (engine,) = engines
    assert engine.asked["devices"] == ["0", "cpu"] and engine.asked["isolate"] is True
    assert engine.asked["results_root"] == results and engine.closed
    # the loop fills both slots, then gives each freed slot the next job in plan order
    assert engine.submitted == [("ray 1", 1), ("ray 2", 2), ("ray 1", 3), ("ray 2", 4), ("ray 1", 5)]
    assert sorted(engine.released) == ["ray 1", "ray 2"]  # each slot let go once, when no job was left for it
    assert "[1/5] [ray 1] mnist_dense seed 1: FAILED (exit 2): data/mnist: no such file" in out
    assert "[2/5] [ray 2] mnist_dense seed 2: done in 1.5 s: test_accuracy 0.5000" in out
    report = json.loads((results / "reproduce.json").read_text())
    assert report["devices"] == ["0", "cpu"] and report["slots"] == ["ray 1", "ray 2"]
    assert [r["device"] for r in report["runs"]] == ["ray 1", "ray 2", "ray 1", "ray 2", "ray 1"]
    assert "--devices 0,cpu" in report["command"] and report["process"] == "one fresh process per run"


def test_one_slot_prints_no_slot_names(rcli, configs, fake_runs, commit, tmp_path):
    results = tmp_path / "results"
    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist_dense", "--seeds", "2")
    assert code == 0 and [c.seed for c in fake_runs[0]] == [1, 2] and "[ray" not in out
    report = json.loads((results / "reproduce.json").read_text())
    assert "devices" not in report and all("device" not in r for r in report["runs"])


def test_a_heartbeat_line_comes_from_the_loop_itself(rcli, configs, commit, tmp_path, monkeypatch):
    """No thread: the loop looks at the engine every POLL_SECONDS and writes the running job's epoch line once
    its .partial history has grown."""
    results = tmp_path / "results"
    monkeypatch.setenv("CNNLAB_HEARTBEAT_SECONDS", "0.05")
    monkeypatch.setattr(reproduce, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(reproduce, "data_fingerprint", lambda job, data_dir, memo: f"fp-{job.name}")

    class Slow(FakeEngine):
        polls = 0

        def submit(self, slot, job, log_stem):
            partial = results / job.name / ".20250101-000000_full.partial"
            partial.mkdir(parents=True)
            (partial / "history.csv").write_text("epoch,loss\n1,0.5\n")

        def wait(self, timeout):
            time.sleep(timeout)
            self.polls += 1
            return [("ray 1", Outcome("complete", 2.0, run_id="r", headline="h"))] if self.polls > 20 else []

    made = []
    monkeypatch.setattr("cnnlab.batch.ray_engine.RayEngine", lambda **kw: made.append(Slow(None, **kw)) or made[-1])
    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist_dense", "--seeds", "1")
    assert code == 0, out
    beats = [ln for ln in out.splitlines() if ": epoch " in ln]
    assert len(beats) == 1 and beats[0].startswith("[1/1] mnist_dense seed 1: epoch 1/")


# ------------------------------------------------------------------------------------------------ dry run


def test_dry_run_prints_the_plan_and_runs_nothing(rcli, configs, fake_runs, commit, tmp_path):
    results = tmp_path / "results"
    (job,) = reproduce.plan(["mnist"])
    fake_complete_run(results, job, "c0ffee")
    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist", "mnist:narrow", "--dry-run", "--seeds", "1")
    assert code == 0 and not fake_runs[0]
    assert out.splitlines() == [
        "[1/2] mnist seed 1: skipped (complete: 20240101-000000_full)",
        "[2/2] mnist_narrow seed 1: would run (no earlier run to estimate from): "
        "cnnlab run mnist:narrow --profile full",
        "dry run: 1 to run, 1 skipped",
    ]
    commit.value = "c0ffee-dirty"
    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist", "--seeds", "2", "--dry-run")
    # seed 1 = the config's own seed (same hash as the old run) but a dirty tree; both estimated from its 42 s
    assert code == 0 and "[2/2] mnist seed 2: would run (~0:00:42): cnnlab run mnist seed=2 --profile full" in out
    assert "[1/2] mnist seed 1: would run (~0:00:42; made by other code (commit c0ffee)): " in out  # and why
    assert out.splitlines()[-1] == "dry run: 2 to run, 0 skipped; estimate 0:01:24 from earlier runs' wall times"
    assert not (results / "reproduce.json").exists()


def test_a_dry_run_of_the_whole_suite_writes_the_plan_the_report_reads(rcli, configs, fake_runs, commit, tmp_path):
    """The protocol's dry run (no selection, override or --seeds) leaves results/plan.csv: every run still to do
    with its estimate and basis; mnist:narrow, never run, is costed as its base mnist (42 s for 1 epoch)."""
    results = tmp_path / "results"
    (job,) = reproduce.plan(["mnist"])
    run = fake_complete_run(results, job, "c0ffee")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "epochs_run": 1}))
    code, out, _ = rcli("--results-dir", results, "reproduce", "mnist", "--dry-run")
    assert code == 0 and not (results / "plan.csv").exists()  # a selection: no plan of the whole suite
    code, out, _ = rcli("--results-dir", results, "reproduce", "--dry-run")
    assert code == 0 and not fake_runs[0]
    assert "mnist_narrow seed 1: would run (~0:00:42 as its base): " in out
    assert "mnist_dense seed 1: would run (no earlier run to estimate from): " in out
    lines = (results / "plan.csv").read_text().splitlines()
    assert lines[0].startswith("# cnnlab reproduce --dry-run, ") and lines[1].startswith("experiment,seed,fold,")
    rows = [line.split(",") for line in lines[2:]]
    # 3 experiments × 3 seeds, less mnist seed 1 (complete) = 8 runs to go
    assert len(rows) == 8 and ["mnist_narrow", "2", "", "42", "as its base", ""] in rows
    assert ["mnist_dense", "3", "", "", "no estimate: no run of its base", ""] in rows
    assert out.splitlines()[-1] == (
        "dry run: 8 to run, 1 skipped; estimate 0:03:30 (2 from earlier runs, 3 modelled on other experiments) "
        "for 5 of them (3 with no estimate)"
    )


# ------------------------------------------------------------------------------------------------ end to end


def test_end_to_end_tiny_mnist_in_a_subprocess(rcli, configs, data_dir, tmp_path):
    results = tmp_path / "results"
    t0 = time.perf_counter()
    code, out, err = rcli("--results-dir", results, "reproduce", "mnist", "--data-dir", data_dir, "--seeds", "1")
    seconds = time.perf_counter() - t0
    assert code == 0, out + err
    lines = out.splitlines()
    assert "Token authentication" not in err  # Ray's start-up warning line: asked for by name, it keeps quiet
    assert lines[0].startswith("engine: ray ") and "a local runtime" in lines[0] and "1 slot(s)" in lines[0]
    # the elapsed time is the machine's (Ray's start-up beside other work took 12 s once): its form, not its value
    assert lines[1].startswith("[1/1] mnist seed 1: started") and STARTED.match(lines[1])
    assert "time left unknown" in lines[1]
    assert lines[2].startswith("[1/1] mnist seed 1: done in ") and ": test_accuracy 0." in lines[2]
    report = json.loads((results / "reproduce.json").read_text())
    (run,) = report["runs"]
    assert report["status"] == "complete" and run["status"] == "complete"
    metrics = json.loads((results / "mnist" / run["run_id"] / "metrics.json").read_text())
    assert metrics["config_hash"] == reproduce.plan(["mnist"])[0].config_hash
    assert metrics["data"]["n_test"] == 50 and metrics["epochs_run"] == 1
    assert "--no-summary" in metrics["environment"]["command"]
    assert {"train/runner.py", "data/mnist.py", "models/stack.py"} <= set(metrics["code"])
    assert (results / "summary.md").is_file()
    assert metrics["environment"]["runs_before_in_process"] == 0  # its slot's warm actor ran it
    # the same code, whatever the state of the git tree: the second batch skips it (and starts no engine)
    code, out, err = rcli("--results-dir", results, "reproduce", "mnist", "--data-dir", data_dir, "--seeds", "1")
    assert code == 0 and out.splitlines()[0] == f"[1/1] mnist seed 1: skipped (complete: {run['run_id']})", out + err
    print(f"end-to-end reproduce of the tiny mnist: {seconds:.1f} s (child {run['seconds']:.1f} s)")


# ------------------------------------------------------------------------------------------------ heartbeat


def test_heartbeat_reports_epochs_of_the_running_job_and_the_time_left(tmp_path, monkeypatch):
    lines = []
    jobs = [Job("mnist", "mnist", 1, (), "full", "h1", 10), Job("mnist_dense", "mnist_dense", 1, (), "full", "h2", 5)]
    batch = reproduce.Batch(jobs, "full", 1, [], [], False, None)
    state = reproduce.Progress(batch, tmp_path, lines.append, lambda *a, **k: None, None)
    state.known = {jobs[1]: 60.0}  # the next job took a minute last time
    state.start(0, "[1/2] mnist seed 1")
    wall, t0 = state.began[0]
    state.heartbeat(now=t0 + 5)  # no epoch finished yet: nothing to say
    partial = tmp_path / "mnist" / ".20260101-000000_full.partial"
    partial.mkdir(parents=True)
    (partial / "history.csv").write_text("epoch,loss\n" + "".join(f"{e},0.5\n" for e in range(1, 5)))
    state.heartbeat(now=t0 + 100)  # 4 epochs in 100 s: 6 more take 150 s; then the next job's 60 s
    state.heartbeat(now=t0 + 110)  # no new epoch: no new line
    assert lines[1:] == ["[1/2] mnist seed 1: epoch 4/10, about 0:02:30 left in this run, 0:03:30 in the batch"]
    old = tmp_path / "mnist_dense" / ".20250101-000000_full.partial"  # an older run's leftover never counts
    old.mkdir(parents=True)
    (old / "history.csv").write_text("epoch,loss\n1,0.5\n")
    os.utime(old / "history.csv", (wall - 3600, wall - 3600))
    assert reproduce.epochs_done(tmp_path, "mnist_dense", wall) is None
    monkeypatch.setenv("CNNLAB_HEARTBEAT_SECONDS", "0")
    assert reproduce.heartbeat_seconds() == 0
    monkeypatch.setenv("CNNLAB_HEARTBEAT_SECONDS", "soon")
    with pytest.raises(CnnlabError, match="CNNLAB_HEARTBEAT_SECONDS: expected a number of seconds"):
        reproduce.heartbeat_seconds()


def test_plan_counts_every_phase_epoch():
    (job,) = reproduce.plan(["mnist"])
    assert job.epochs == 5
    (job,) = reproduce.plan(["mnist"], ["train.epochs=3"])
    assert job.epochs == 3


def test_the_default_protocol_is_the_reference_s_own():
    # a cross-validated set: every fold, the config's seed; a fixed split: 3 seeds; quick: once
    jobs = reproduce.plan(["kim_mr", "mnist"], seeds=None)
    kim = [j for j in jobs if j.name == "kim_mr"]
    assert [(j.seed, j.fold) for j in kim] == [(1, k) for k in range(10)]
    assert [j.overrides for j in kim][3] == ("data.options.fold=3",)
    assert [(j.seed, j.fold, j.overrides) for j in jobs if j.name == "mnist"] == [
        (k, None, (f"seed={k}",)) for k in (1, 2, 3)
    ]
    assert [(j.name, j.seed) for j in reproduce.plan(["kim_mr", "mnist"], seeds=None, profile="quick")] == [
        ("kim_mr", 1),
        ("mnist", 1),
    ]
    # an override pins it; --seeds N gives N seeds on the config's fold
    assert [j.fold for j in reproduce.plan(["kim_mr"], ["data.options.fold=4"], seeds=None)] == [4]  # labelled
    assert len(reproduce.plan(["mnist"], ["seed=7"], seeds=None)) == 1
    assert [(j.seed, j.fold) for j in reproduce.plan(["kim_mr"], seeds=2)] == [(1, None), (2, None)]
    # SST-2 has its own test split: seeds, not folds
    assert [j.seed for j in reproduce.plan(["kim_sst2"], seeds=None)] == [1, 2, 3]


def test_a_config_that_only_changed_its_precision_request_is_the_same_setting(tmp_path):
    """mnist.yaml going from float32 to `auto`, or a run that asked for mixed_bfloat16 by name: the config hash
    differs, the setting does not; the precision *policy* then decides (a float32 or bfloat16 run counts for
    `auto`, a float16 one does not)."""
    from cnnlab.config.experiment import load

    now = load("mnist", ["train.precision=auto"], "full", keras=False)
    job = Job("mnist", "mnist", 1, (), "full", now.config_hash(), precision="auto", experiment=now)
    for asked, policy, why in (
        ("float32", "float32", None),
        ("mixed_bfloat16", "mixed_bfloat16", None),  # a policy auto can choose (AUTO_CHOICES)
        ("mixed_float16", "mixed_float16", "precision mixed_float16, now float32"),
    ):
        ran = load("mnist", [f"train.precision={asked}"], "full", keras=False)
        folder = tmp_path / asked
        folder.mkdir()
        (folder / "config.yaml").write_text(ran.resolved_yaml())
        run = _with(config_hash=ran.config_hash(), precision={"requested": asked, "policy": policy}, _dir=str(folder))
        assert ran.config_hash() != job.config_hash
        assert reproduce.stale(job, run, _today(policy="float32")) == why
        assert reproduce.why_stale(job, [("r1", run)], _today(policy="float32")) == (why or "complete")
    other = load("mnist", ["train.epochs=2"], "full", keras=False)  # a real difference stays one
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.yaml").write_text(other.resolved_yaml())
    run = _with(config_hash=other.config_hash(), _dir=str(folder))
    assert reproduce.stale(job, run, _today()) == "its config differs"
