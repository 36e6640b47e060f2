"""A/B of two settings of one experiment, seed-matched: the measured cause of a difference.

Reference: issue 12 ("show the cause as a measured A/B": seed-matched pairs); Student's paired t interval.
Trap: two single runs differ by seed noise alone — on IMDB's 5,000 validation reviews the binomial standard
error of an accuracy is 0.005 —, so the interval is over the per-seed *differences* (same seed, same split, same
initial weights on both sides), not over two independent means; with one pair there is no interval at all. A pair
with a dead start on either side (compare.dead_start: a run that never learned) is left out of the difference and
named, as the verdict leaves such runs out: a seed whose initial outputs stop every gradient says nothing about
the setting under test, and counting it would swamp a 0.01 effect with a 0.3 one.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from cnnlab.report import verdicts
from cnnlab.report.compare import dead_start, pick_run, run_set
from cnnlab.report.verdicts import t975
from cnnlab.store.results import history_columns, read_history


def _values(root: Path, experiment: str, ref: dict) -> tuple[dict[tuple, float], set[tuple]]:
    """(seed, fold) → the reference statistic of each run of the experiment's picked run set; and the (seed, fold)
    keys of its dead starts (compare.dead_start), whose values are in the first too."""
    out, dead = {}, set()
    for run, m in run_set(root, experiment, pick_run(root, experiment)):
        v = verdicts.value(
            ref, m.get("measured") or {}, history_columns(read_history(run / "history.csv")), m.get("directions")
        )
        if v is not None:
            fold = next((o.split("=", 1)[1] for o in m.get("overrides", []) if o.startswith("data.options.fold=")), "0")
            out[(m.get("seed"), fold)] = float(v)
            if dead_start(run):
                dead.add((m.get("seed"), fold))
    return out, dead


def ab(root: Path, a: str, b: str, metric: str, statistic: str | None = None) -> dict:
    """Seed-matched pairs of `metric` (by `statistic`) between result folders `a` and `b` of `root`: the values,
    the mean difference b − a and its paired 95% interval (None with fewer than two pairs), over the pairs with
    no dead start on either side; `dead`: the pairs left out, (key, value a, value b, a dead, b dead)."""
    ref = {"metric": metric, **({"statistic": statistic} if statistic else {})}
    (va, dead_a), (vb, dead_b) = _values(Path(root), a, ref), _values(Path(root), b, ref)
    matched = sorted(set(va) & set(vb), key=str)
    dead = [(k, va[k], vb[k], k in dead_a, k in dead_b) for k in matched if k in dead_a or k in dead_b]
    keys = [k for k in matched if k not in dead_a and k not in dead_b]
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
        "dead": dead,
    }
    if len(diffs) >= 2:
        half = t975(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
        out["interval"] = (out["diff"] - half, out["diff"] + half)
    return out


def markdown(result: dict) -> str:
    """The A/B as a Markdown table: one row per seed, a dead start's value marked † and its pair left out of the
    difference, then the mean difference with its interval."""
    a, b = result["a"], result["b"]
    lines = [f"| seed (fold) | {a} | {b} | {b} − {a} |", "|---|---:|---:|---:|"]

    def label(seed, fold) -> str:
        return f"{seed}{'' if fold == '0' else f' ({fold})'}"

    rows = [(k, f"{x:.4f}", f"{y:.4f}", f"{y - x:+.4f}") for k, x, y in result["pairs"]]
    rows += [
        (k, f"{x:.4f}{' †' if da else ''}", f"{y:.4f}{' †' if db else ''}", "left out")
        for k, x, y, da, db in result.get("dead", [])
    ]
    for k, x, y, d in sorted(rows, key=lambda r: str(r[0])):
        lines.append(f"| {label(*k)} | {x} | {y} | {d} |")
    if result["n"]:
        ci = result["interval"]
        lines.append(
            f"| mean (n={result['n']}) | {result['mean_a']:.4f} | {result['mean_b']:.4f} | "
            f"{result['diff']:+.4f}" + (f" [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else " (one pair: no interval)") + " |"
        )
    note = ""
    if result.get("dead"):
        note = (
            "\n† dead start (training loss the same in every epoch: the model never learned); its pair is left out "
            "of the mean difference.\n"
        )
    return f"{result['metric']}, seed-matched:\n\n" + "\n".join(lines) + "\n" + note
