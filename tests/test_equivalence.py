"""Code equivalence (cnnlab/batch/equivalence.py, `cnnlab vouch`): which finished runs a measured equivalence carries
over to today's code, and how the measurement decides."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cnnlab.batch import equivalence, reproduce
from cnnlab.batch.reproduce import Job
from cnnlab.errors import CnnlabError

TODAY = {"runner.py": "t-runner", "data/mnist.py": "t-mnist", "models.py": "t-models"}
THEN = {"runner.py": "o-runner", "data/mnist.py": "t-mnist", "models.py": "o-models"}
OLDER = {"runner.py": "x-runner", "data/mnist.py": "t-mnist", "models.py": "o-models"}


def _record(frm, to, backend="tensorflow"):
    return {"from_commit": "c" * 40, "from": frm, "to": to, "backend": backend}


def test_a_chain_of_records_links_earlier_trees_to_today_under_its_backend_only():
    records = [_record(OLDER, THEN), _record(THEN, TODAY)]  # OLDER → THEN → TODAY
    assert equivalence.equivalent_trees(TODAY, records, "tensorflow") == [TODAY, THEN, OLDER]
    assert equivalence.equivalent_trees(TODAY, records, "jax") == [TODAY]  # measured under TensorFlow only
    # one later edit of a numeric file breaks the chain at its start: nothing is carried over any more
    edited = {**TODAY, "models.py": "t-models-2"}
    assert equivalence.equivalent_trees(edited, records, "tensorflow") == [edited]


def test_a_run_counts_when_its_numeric_files_are_one_vouched_tree():
    trees = [TODAY, THEN]
    # a run records only the files it loaded, and report/CLI files (NOT_NUMERIC) never count
    assert equivalence.covers({"runner.py": "o-runner", "data/mnist.py": "t-mnist", "cli.py": "any"}, trees)
    # a run from before the layered package recorded its report files under their flat names: left out as well
    assert equivalence.covers({"runner.py": "o-runner", "reproduce.py": "any", "batch/reproduce.py": "any"}, trees)
    assert not equivalence.covers({"runner.py": "o-runner", "models.py": "t-models"}, trees)  # a mix of two trees
    assert not equivalence.covers({"runner.py": "edited-after-the-process-started"}, trees)
    assert not equivalence.covers({"runner.py": "o-runner", "blocks.py": "b"}, trees)  # a file neither tree has


def _run(code, backend="tensorflow"):
    return {
        "status": "complete",
        "config_hash": "h1",
        "profile": "full",
        "code": code,
        "precision": {"policy": "float32"},
        "data": {"fingerprint": "d1"},
        "environment": {"git_commit": "old", "keras": "3.15.1", "backend": backend},
    }


def test_the_skip_key_reuses_a_run_of_vouched_code_and_nothing_else():
    now = equivalence.numeric_tree()
    then = {**now, "train/runner.py": "0" * 16}
    code = {"train/runner.py": "0" * 16, "data/__init__.py": now["data/__init__.py"]}
    software = {"keras": "3.15.1", "backend": "tensorflow"}
    job = Job("mnist", "mnist", 1, (), "full", "h1")

    def today(records):
        return reproduce.Today(
            "abc", software, fingerprint=lambda j: "d1", policy=lambda r: "float32", equivalences=records
        )

    assert reproduce.stale(job, _run(code), today([])) == "code changed since (train/runner.py)"
    assert reproduce.stale(job, _run(code), today([_record(then, now)])) is None
    assert (
        reproduce.stale(job, _run(code), today([_record(then, now, "jax")])) == "code changed since (train/runner.py)"
    )
    assert reproduce.stale(job, _run(code), today([_record(then, {**now, "models/stack.py": "1" * 16})])) is not None
    # the other checks still apply to a vouched run
    assert reproduce.stale(job, {**_run(code), "profile": "quick"}, today([_record(then, now)])) == "profile quick"


def test_records_are_read_from_the_results_folder(tmp_path):
    assert equivalence.load(tmp_path) == []
    (tmp_path / equivalence.RECORDS).write_text(json.dumps({"records": [_record(THEN, TODAY)]}))
    assert equivalence.load(tmp_path) == [_record(THEN, TODAY)]
    (tmp_path / equivalence.RECORDS).write_text("{not json")
    with pytest.raises(CnnlabError, match="code_equivalence.json: cannot read"):
        equivalence.load(tmp_path)


def _run_folder(root: Path, loss: str, seconds: str, accuracy: float = 0.5) -> Path:
    root.mkdir(parents=True)
    (root / "history.csv").write_text(f"epoch,loss,epoch_seconds\n1,{loss},{seconds}\n")
    (root / "params.csv").write_text("layer,params\nconv2d_1,320\n")
    metrics = {"measured": {"test_accuracy": accuracy}, "data": {"fingerprint": "d"}, "config_hash": "h"}
    (root / "metrics.json").write_text(json.dumps(metrics))
    return root


def test_two_runs_are_the_same_numbers_whatever_their_wall_times(tmp_path):
    a = _run_folder(tmp_path / "a", "0.25", "1.5")
    assert equivalence.differences(a, _run_folder(tmp_path / "b", "0.25", "9.0")) == []
    assert equivalence.differences(a, _run_folder(tmp_path / "c", "0.2500001", "1.5")) == ["history.csv"]
    assert equivalence.differences(a, _run_folder(tmp_path / "d", "0.25", "1.5", 0.6)) == ["measured"]


@pytest.fixture
def repo(tmp_path):
    """A git repository with a cnnlab/ package of two numeric files and a report file, committed once."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    (root / "cnnlab" / "data").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "cnnlab" / "runner.py").write_text("STEP = 1\n")
    (root / "cnnlab" / "data" / "mnist.py").write_text("SCALE = 255\n")
    (root / "cnnlab" / "cli.py").write_text("# the command line\n")
    (root / "configs" / "mnist.yaml").write_text("name: mnist\n")

    def git(*args):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    return root


def test_the_earlier_tree_is_read_from_git_without_touching_the_working_tree(repo):
    then = equivalence.tree_at("HEAD", repo)
    assert set(then) == {"runner.py", "data/mnist.py"}  # cli.py computes nothing
    (repo / "cnnlab" / "runner.py").write_text("STEP = 2\n")
    assert equivalence.tree_at("HEAD", repo) == then
    assert equivalence.numeric_tree(repo / "cnnlab")["runner.py"] != then["runner.py"]
    with pytest.raises(CnnlabError, match="'nonesuch': not a commit"):
        equivalence.resolve("nonesuch", repo)


def _fake_probe(value_of):
    """probe_run writing a run folder whose loss is value_of(the tree's runner.py text)."""

    def probe(tree, experiment, out, backend, data_dir, log_to):
        return _run_folder(
            out / "results" / experiment / "run", value_of((tree / "cnnlab" / "runner.py").read_text()), "1"
        )

    return probe


def test_vouch_records_an_equivalence_only_when_every_probe_is_identical(repo, tmp_path, monkeypatch):
    results = tmp_path / "results"
    quiet = lambda line: None  # noqa: E731
    kw = dict(results_root=results, backend="tensorflow", log=quiet, repo=repo, package=repo / "cnnlab")
    assert equivalence.vouch("HEAD", ["mnist"], **kw) is None  # the same numeric code: nothing to vouch
    (repo / "cnnlab" / "runner.py").write_text("STEP = 1  # reformatted\n")

    monkeypatch.setattr(equivalence, "probe_run", _fake_probe(lambda text: "0.25"))
    record = equivalence.vouch("HEAD", ["mnist", "kim_mr"], **kw)
    assert record["changed"] == ["runner.py"] and [p["experiment"] for p in record["probes"]] == ["mnist", "kim_mr"]
    assert record["from"] == equivalence.tree_at("HEAD", repo) and record["to"] == equivalence.numeric_tree(
        repo / "cnnlab"
    )
    assert equivalence.load(results) == [json.loads(json.dumps(record))]

    (repo / "cnnlab" / "runner.py").write_text("STEP = 2\n")  # a change that moves the numbers
    monkeypatch.setattr(equivalence, "probe_run", _fake_probe(lambda text: "0.5" if "2" in text else "0.25"))
    with pytest.raises(equivalence.NotEquivalent, match="mnist .* differs .*: history.csv; no record written"):
        equivalence.vouch("HEAD", ["mnist"], **kw)
    assert len(equivalence.load(results)) == 1
    assert equivalence.NotEquivalent.exit_code == 1  # a measurement, not a user mistake


def test_the_dry_run_says_which_runs_count_through_an_equivalence(tmp_path):
    (job,) = reproduce.plan(["mnist"])
    now = equivalence.numeric_tree()
    then = {**now, "train/runner.py": "0" * 16}
    metrics = {
        **_run({"train/runner.py": "0" * 16}, backend="tensorflow"),
        "run_id": "20261202-000000_full",
        "config_hash": job.config_hash,
        "seed": job.seed,
        "overrides": list(job.overrides),
        "timing": {"wall_seconds": 60.0},
    }
    run = tmp_path / "mnist" / metrics["run_id"]
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(metrics))
    batch = reproduce.Batch([job], "full", None, ["mnist"], [], False, "abc")

    def dry(records):
        lines = []
        software = {"keras": "3.15.1", "backend": "tensorflow"}
        today = reproduce.Today(
            "abc", software, fingerprint=lambda j: "d1", policy=lambda r: "float32", equivalences=records
        )
        reproduce.dry_run(batch, tmp_path, log=lines.append, today=today)
        return lines[0]

    assert dry([]) == (
        "[1/1] mnist seed 1: would run (~0:01:00; code changed since (train/runner.py)): "
        "cnnlab run mnist --profile full"
    )
    assert dry([_record(then, now)]) == (
        "[1/1] mnist seed 1: skipped (complete: 20261202-000000_full; made by earlier code measured equivalent "
        "(cnnlab vouch))"
    )
