"""A/B of two settings of one experiment, seed-matched: the measured cause of a difference.

Reference: issue 12 ("show the cause as a measured A/B": seed-matched pairs); Student's paired t interval.
Trap: two single runs differ by seed noise alone — on IMDB's 5,000 validation reviews the binomial standard
error of an accuracy is 0.005 —, so the interval is over the per-seed *differences* (same seed, same split, same
initial weights on both sides), not over two independent means; with one pair there is no interval at all.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from cnnlab.report import verdicts
from cnnlab.report.compare import pick_run, run_set
from cnnlab.report.verdicts import t975
from cnnlab.store.results import history_columns, read_history


def _values(root: Path, experiment: str, ref: dict) -> dict[tuple, float]:
    """(seed, fold) → the reference statistic of each run of the experiment's picked run set."""
    out = {}
    for run, m in run_set(root, experiment, pick_run(root, experiment)):
        v = verdicts.value(
            ref, m.get("measured") or {}, history_columns(read_history(run / "history.csv")), m.get("directions")
        )
        if v is not None:
            fold = next((o.split("=", 1)[1] for o in m.get("overrides", []) if o.startswith("data.options.fold=")), "0")
            out[(m.get("seed"), fold)] = float(v)
    return out


def ab(root: Path, a: str, b: str, metric: str, statistic: str | None = None) -> dict:
    """Seed-matched pairs of `metric` (by `statistic`) between result folders `a` and `b` of `root`: the values,
    the mean difference b − a and its paired 95% interval (None with fewer than two pairs)."""
    ref = {"metric": metric, **({"statistic": statistic} if statistic else {})}
    va, vb = _values(Path(root), a, ref), _values(Path(root), b, ref)
    keys = sorted(set(va) & set(vb), key=str)
    diffs = [vb[k] - va[k] for k in keys]
    out = {
        "a": a,
        "b": b,
        "metric": verdicts.metric_label(ref),
        "pairs": [(k, va[k], vb[k]) for k in keys],
        "n": len(keys),
        "mean_a": statistics.fmean(va[k] for k in keys) if keys else None,
        "mean_b": statistics.fmean(vb[k] for k in keys) if keys else None,
        "diff": statistics.fmean(diffs) if diffs else None,
        "interval": None,
    }
    if len(diffs) >= 2:
        half = t975(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        out["interval"] = (out["diff"] - half, out["diff"] + half)
    return out


def markdown(result: dict) -> str:
    """The A/B as a Markdown table: one row per seed, then the mean difference with its interval."""
    a, b = result["a"], result["b"]
    lines = [f"| seed (fold) | {a} | {b} | {b} − {a} |", "|---|---:|---:|---:|"]
    for (seed, fold), x, y in result["pairs"]:
        lines.append(f"| {seed}{'' if fold == '0' else f' ({fold})'} | {x:.4f} | {y:.4f} | {y - x:+.4f} |")
    if result["n"]:
        ci = result["interval"]
        lines.append(
            f"| mean (n={result['n']}) | {result['mean_a']:.4f} | {result['mean_b']:.4f} | "
            f"{result['diff']:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else " (one pair: no interval)") + " |"
        )
    return f"{result['metric']}, seed-matched:\n\n" + "\n".join(lines) + "\n"
