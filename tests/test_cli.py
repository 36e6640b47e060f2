"""The command line: list, compare on an empty folder, `python -m cnnlab`, and `make help`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_list_shows_every_experiment_with_its_description(cli):
    code, out, _ = cli("list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert {"mnist", "mnist_no_pooling", "mnist_dense"} <= set(lines)
    assert "Lecture 002's MNIST convnet" in lines["mnist"]


def test_compare_without_runs_lists_references_as_not_run(cli, tmp_path):
    code, out, _ = cli("--results-dir", tmp_path, "compare")
    assert code == 0
    assert (tmp_path / "summary.csv").is_file() and "not run yet" in (tmp_path / "summary.md").read_text()
    assert "| mnist_no_pooling | params_conv_base | 55,744 |" in out


def test_python_dash_m_and_usage_errors():
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "list"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "mnist_dense" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "fly"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'fly'" in proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_documents_every_target():
    proc = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    documented = {line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("make ")}
    targets = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith(".PHONY:"):
            targets = set(line.split(":", 1)[1].split())
    assert targets and targets == documented, targets ^ documented


def test_overrides_may_follow_options(cli):
    code, out, _ = cli("params", "mnist", "--extended", "model.layers.0.Conv2D.filters=16")
    assert code == 0 and "16 × (3×3×1) + 16" in out
    code, out, err = cli("params", "mnist", "--extended", "--bogus")
    assert (code, out) == (2, "") and err == "cnnlab: error: unrecognized arguments: --bogus (see cnnlab --help)\n"


def test_a_reader_that_has_gone_is_no_traceback():
    """`cnnlab list | head -1`: the pipe's reader leaves early. Here its end is closed before cnnlab starts, so the
    first print meets a broken pipe every time: exit status 141 (128 + SIGPIPE, what the shell reports for a
    program the pipe ended), nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cnnlab", "list"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def _commands(parser, prefix=()):
    """Every command path of the parser, the top level first: (), ('run',), ('arith', 'size'), ..."""
    import argparse

    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*prefix, name))


def test_every_help_page_prints(cli):
    """`cnnlab --help` was a TypeError traceback: two commands' help came from docstrings saying "95%", which
    argparse expands with the % operator. Every command's help, at every level, prints and exits 0."""
    from cnnlab.cli import parser

    commands = list(_commands(parser()))
    assert ("ab",) in commands and ("precision",) in commands and ("arith", "size") in commands
    for path in commands:
        code, out, err = cli(*path, "--help")
        assert (code, err) == (0, ""), (path, err[-300:])
        assert out.startswith("usage: cnnlab") and "Traceback" not in out, path
    code, out, _ = cli("--help")
    assert "its paired 95% interval" in " ".join(out.split())  # the docstring's text, its '%' printed once
