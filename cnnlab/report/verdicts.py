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

from cnnlab import direction

# Student's t, two-sided 95%, by degrees of freedom (1..10, then 15, 20, 30); 1.96 beyond
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (the nearest tabulated df at or below)."""
    if df < 1:
        raise ValueError(f"cnnlab bug: t quantile of {df} degrees of freedom")
    return _T975[max(k for k in _T975 if k <= df)] if df <= 30 else 1.96


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


def value(
    ref: Mapping,
    measured: Mapping,
    history: Mapping[str, Sequence[float]] | None = None,
    directions: Mapping[str, str] | None = None,
) -> float | None:
    """The run's number for `ref`: measured[metric] for its default statistic, else computed from `history`
    (column → per-epoch values; history.csv's 'val_accuracy', 'accuracy', ...); 'best' in the metric's own
    direction (the run's recorded `directions`, cnnlab.direction)."""
    metric = ref.get("metric") or ""
    stat = ref.get("statistic")
    if not stat or stat == statistic_of({"metric": metric}):
        found = measured.get(metric)
        if isinstance(found, (int, float)) or not history:
            return found if isinstance(found, (int, float)) else None
        stat = statistic_of({"metric": metric})
    column = metric[len("train_") :] if metric.startswith("train_") else metric
    series = [v for v in (history or {}).get(column, []) if v is not None]
    if not series:
        return None
    return series_value(series, stat, minimise=direction.minimised(column, directions))


def verdict(measured: float | None, rng, profile: str = "full", overrides=(), substitution: str | None = None) -> str:
    """'within' / 'below' / 'above' the accepted range, qualified when the run was not the published setting;
    a declared substitution is named ("below — expected: substitution ...")."""
    if measured is None:
        return "not measured"
    lo, hi = rng
    base = "within" if lo <= measured <= hi else ("below" if measured < lo else "above")
    if substitution:
        base = (
            f"{base} — expected: substitution: {substitution}"
            if base != "within"
            else f"within (substitution: {substitution})"
        )
    if profile != "full":
        return f"{base} (quick profile, not comparable)"
    if overrides:
        return f"{base} (run with overrides)"
    return base


MIN_REPEATS = 3
RULE = (
    "Verdict rule: the mean of the repeats (seeds, or folds where the reference used cross-validation) is "
    "compared with the accepted range. With fewer than 3 repeats the verdict is provisional (n=1, n=2). With 3 "
    "or more, a mean outside the range is 'below' or 'above' only if the whole 95% interval of the mean "
    "(Student's t on the repeats) lies outside it too; otherwise 'within the noise'. A declared substitution is "
    "named ('below — expected: substitution: ...')."
)


def set_verdict(
    mean: float | None,
    std: float | None,
    n: int,
    rng,
    profile: str = "full",
    overrides=(),
    substitution: str | None = None,
) -> str:
    """The verdict of a run set (`n` repeats, their `mean` and sample `std`) by `RULE`."""
    base = verdict(mean, rng, profile, overrides, substitution)
    if mean is None or profile != "full" or overrides:
        return base
    if n < MIN_REPEATS:
        return f"provisional (n={n}): {base}"
    lo, hi = rng
    if lo <= mean <= hi:
        return base
    half = t975(n - 1) * (std or 0.0) / (n**0.5)
    if mean + half < lo or mean - half > hi:
        return base
    return (
        f"within the noise (mean {'below' if mean < lo else 'above'}; 95% interval "
        f"[{mean - half:.4f}, {mean + half:.4f}] reaches the range)"
    )


def metric_label(ref: Mapping) -> str:
    """'val_accuracy (mean of the last 10 epochs)' where a reference names a statistic other than its default."""
    metric = ref.get("metric") or ""
    stat = ref.get("statistic")
    if stat and stat != statistic_of({"metric": metric}):
        return f"{metric} ({LABELS[stat]})"
    return metric
