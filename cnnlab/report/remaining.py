"""The report's "What is left" section: the runs the reproduction still lacks and what they would cost.

Read from results/plan.csv, which `cnnlab reproduce --dry-run` writes for the whole suite under the reference's
protocol (every experiment, 3 seeds, a cross-validated set over its folds): one row per run still to do, with its
estimated wall time and how it was estimated (an earlier run of the experiment, or cnnlab.batch.estimate's
model of the other runs). Grouped here per experiment, in the lectures' order.
Reference: issue 18 ("what is not done stays in the report as 'not run', with its estimated cost on a 2-core
CPU and on one GPU").
Trap: the plan is as of its dry run; runs finished since still appear until the next one (the section dates
it). A GPU cost is shown only from a GPU run on record: none is estimated from a CPU's.
"""

from __future__ import annotations

import csv
from pathlib import Path

PLAN = "plan.csv"  # written by cnnlab.batch.reproduce (the batch layer, above); the report only reads it


def _hours(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def read_plan(root: Path) -> tuple[str, list[dict]] | None:
    """(the plan's comment line, its rows), or None without a readable plan.csv."""
    path = Path(root) / PLAN
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    comment = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else ""
    body = [line for line in lines if not line.startswith("#")]
    try:
        rows = list(csv.DictReader(body))
    except csv.Error:
        return None
    if rows and not {"experiment", "estimated_seconds", "basis"} <= set(rows[0]):
        return None
    return comment, rows


def section(root: Path, order=None, gpu_runs: int = 0) -> list[str]:
    """Markdown lines of the section (none without a plan): per experiment the runs to go, their estimated
    CPU time and its basis; the total; and what a GPU estimate would rest on."""
    plan = read_plan(root)
    if plan is None:
        return []
    comment, rows = plan
    lines = ["## What is left", ""]
    if not rows:
        return lines + [f"Nothing: every run of the protocol is complete ({comment}).", ""]
    per: dict[str, dict] = {}
    for r in rows:
        e = per.setdefault(r["experiment"], {"runs": 0, "seconds": 0.0, "unknown": 0, "bases": set()})
        e["runs"] += 1
        if r["estimated_seconds"]:
            e["seconds"] += float(r["estimated_seconds"])
        else:
            e["unknown"] += 1
        e["bases"].add(r["basis"])
    names = sorted(per, key=order) if order else sorted(per)
    total = sum(e["seconds"] for e in per.values())
    unknown = sum(e["unknown"] for e in per.values())
    lines += [
        f"{len(rows)} runs of the protocol are not done yet, about **{_hours(total)}** of 2-core CPU time"
        + (f" ({unknown} without an estimate)" if unknown else "")
        + f" — from `cnnlab reproduce --dry-run`'s plan ([plan.csv](plan.csv); {comment}). "
        + (
            "A GPU estimate needs a GPU run to time it by; none is on record yet, so none is given."
            if not gpu_runs
            else f"{gpu_runs} runs on a GPU are on record (their folders name the device)."
        ),
        "",
        "| Experiment | Runs to go | Estimated CPU time | Estimated from |",
        "|---|---:|---:|---|",
    ]
    for name in names:
        e = per[name]
        cost = _hours(e["seconds"]) if e["seconds"] else "–"
        if e["unknown"] and e["seconds"]:
            cost += f" (+{e['unknown']} unknown)"
        lines.append(f"| {name} | {e['runs']} | {cost} | {'; '.join(sorted(e['bases']))} |")
    return lines + [""]
