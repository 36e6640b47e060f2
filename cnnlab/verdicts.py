"""What a reference is compared with, and the verdict: the reference's own statistic of a run's history, its
accepted range, and any substitution it declares.

Reference: issue 12 item 8 (like with like); DLwP notebooks (the book's peaks are the max over epochs; its "82%"
is the plateau of the last epochs); Kim (2014) §3 (test accuracy at the best dev epoch).
Trap: `val_accuracy` in metrics.json is the best epoch's value. A reference quoting a plateau ("stalls at 70-72%",
"you now reach 82%") is the mean of the last epochs; comparing it with the best epoch flatters every run.
"""
from __future__ import annotations

import statistics as _stats
from collections.abc import Mapping, Sequence

DEFAULT_STATISTIC = {"val_": "best", "train_": "last"}
LABELS = {"best": "best epoch", "last": "last epoch", "mean_last_10": "mean of the last 10 epochs"}


def statistic_of(ref: Mapping) -> str | None:
    """The statistic a reference names, or its metric's default ('best' for val_, 'last' for train_)."""
    metric = ref.get("metric") or ""
    return ref.get("statistic") or next((s for p, s in DEFAULT_STATISTIC.items() if metric.startswith(p)), None)


def series_value(series: Sequence[float], statistic: str, minimise: bool) -> float:
    """One number of a per-epoch series by `statistic`."""
    if statistic == "best":
        return float(min(series) if minimise else max(series))
    if statistic == "last":
        return float(series[-1])
    if statistic == "mean_last_10":
        return float(_stats.fmean(series[-10:]))
    raise ValueError(f"cnnlab bug: unknown statistic {statistic!r}")


def value(ref: Mapping, measured: Mapping, history: Mapping[str, Sequence[float]] | None = None) -> float | None:
    """The run's number for `ref`: measured[metric] for its default statistic, else computed from `history`
    (column → per-epoch values; history.csv's 'val_accuracy', 'accuracy', ...)."""
    metric = ref.get("metric") or ""
    stat = ref.get("statistic")
    if not stat or stat == statistic_of({"metric": metric}):
        found = measured.get(metric)
        if isinstance(found, (int, float)) or not history:
            return found if isinstance(found, (int, float)) else None
        stat = statistic_of({"metric": metric})
    column = metric[len("train_"):] if metric.startswith("train_") else metric
    series = [v for v in (history or {}).get(column, []) if v is not None]
    if not series:
        return None
    return series_value(series, stat, minimise="loss" in column)


def verdict(measured: float | None, rng, profile: str = "full", overrides=(), substitution: str | None = None) -> str:
    """'within' / 'below' / 'above' the accepted range, qualified when the run was not the published setting;
    a declared substitution is named ("below — expected: substitution ...")."""
    if measured is None:
        return "not measured"
    lo, hi = rng
    base = "within" if lo <= measured <= hi else ("below" if measured < lo else "above")
    if substitution:
        base = (f"{base} — expected: substitution: {substitution}" if base != "within"
                else f"within (substitution: {substitution})")
    if profile != "full":
        return f"{base} (quick profile, not comparable)"
    if overrides:
        return f"{base} (run with overrides)"
    return base


def metric_label(ref: Mapping) -> str:
    """'val_accuracy (mean of the last 10 epochs)' where a reference names a statistic other than its default."""
    metric = ref.get("metric") or ""
    stat = ref.get("statistic")
    if stat and stat != statistic_of({"metric": metric}):
        return f"{metric} ({LABELS[stat]})"
    return metric
