"""The curves and group plots carry the reference and its band, integer epochs, axis labels, std bands."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.collections import PolyCollection
from matplotlib.patches import Polygon, Rectangle
from matplotlib.ticker import MaxNLocator

from cnnlab.report import plots

HISTORY = {
    "epoch": [1, 2, 3],
    "loss": [0.9, 0.5, 0.4],
    "accuracy": [0.6, 0.8, 0.9],
    "val_loss": [0.8, 0.6, 0.7],
    "val_accuracy": [0.55, 0.75, 0.8],
    "epoch_seconds": [1.0, 1.0, 1.0],
}
REF = {"metric": "val_accuracy", "value": 0.8382, "range": [0.82, 0.85], "statistic": "best"}


def _labels(ax):
    return ax.get_legend_handles_labels()[1]


def test_curves_draw_the_reference_and_its_band_on_its_panel():
    fig = plots.curves_figure(
        HISTORY, "mnist (full profile)", references=[REF, {"metric": "params_total", "value": 93322, "range": [1, 2]}]
    )
    loss, acc = fig.axes
    assert "reference 0.8382 (val, best)" in _labels(acc) and "accepted 0.82–0.85" in _labels(acc)
    assert not any("reference" in lab for lab in _labels(loss))  # a parameter count draws nowhere
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    for ax in fig.axes:
        locator = ax.xaxis.get_major_locator()
        assert isinstance(locator, MaxNLocator) and all(float(t).is_integer() for t in locator.tick_values(1, 3))
    assert any(isinstance(p, (Polygon, Rectangle)) and abs(p.get_alpha() - 0.10) < 1e-9 for p in acc.patches)
    plt.close(fig)
    assert plots.curves(HISTORY, "t", references=[REF])[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_one_value_range_draws_the_line_without_a_band():
    fig = plots.curves_figure(HISTORY, "t", references=[{**REF, "range": [0.8382, 0.8382], "statistic": None}])
    labels = _labels(fig.axes[1])
    assert "reference 0.8382 (val)" in labels and not any(lab.startswith("accepted") for lab in labels)
    plt.close(fig)


def test_group_overlay_has_std_bands_a_shared_reference_and_one_legend_below():
    series = {"a (n=3)": {"val_accuracy": [0.8, 0.85, 0.86]}, "b (quick profile)": {"val_accuracy": [0.7, 0.8, 0.9]}}
    bands = {"a (n=3)": {"val_accuracy": [0.01, 0.02, 0.01]}}
    refs = {"a (n=3)": [REF], "b (quick profile)": [REF]}
    fig = plots.overlay_figure(series, ["val_accuracy"], "a long group title " * 8, bands, refs)
    (ax,) = fig.axes
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 1  # the one run set with a spread
    assert ax.get_legend() is None and len(fig.legends) == 1  # below the panels, over no curve
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["a (n=3)", "b (quick profile)"] and "reference 0.8382 (val, best)" in legend
    assert "\n" in fig._suptitle.get_text()  # a long title wraps instead of running off the figure
    plt.close(fig)
    # two references that differ: a line per experiment, in its colour, named
    fig = plots.overlay_figure(
        series, ["val_accuracy"], "t", None, {"a (n=3)": [REF], "b (quick profile)": [{**REF, "value": 0.9}]}
    )
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert (
        "a (n=3): reference 0.8382 (val, best)" in legend and "b (quick profile): reference 0.9 (val, best)" in legend
    )
    plt.close(fig)
