"""Real-data reproductions that take minutes on 2 CPU cores: `make test-slow`."""

from __future__ import annotations

import json

import pytest

from cnnlab.store.results import complete_runs


@pytest.mark.slow
def test_mnist_full_run_reaches_the_lecture_range(cli, data_dir, tmp_path):
    """Lecture 002's convnet, full data, 5 epochs: test accuracy inside the accepted range of configs/mnist.yaml."""
    code, _, err = cli("--results-dir", tmp_path, "run", "mnist", "--data-dir", data_dir, "--verbose", "2")
    assert code == 0, err
    (run,) = complete_runs(tmp_path, "mnist")
    m = json.loads((run / "metrics.json").read_text())
    ref = next(r for r in m["references"] if r["metric"] == "test_accuracy")
    lo, hi = ref["range"]
    assert lo <= m["measured"]["test_accuracy"] <= hi, m["measured"]
