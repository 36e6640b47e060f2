"""The summary: every experiment's latest run set beside its published references (summary.csv and summary.md).

Reference: timm's results/*.csv (raw numbers in CSV, formatting only in the Markdown view).
Trap: a quick-profile run or a run with CLI overrides is not the published setting; its verdict says so
instead of claiming (or denying) a reproduction.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import yaml

from cnnlab.config import configs_dir, experiment_names
from cnnlab.results import atomic_write, complete_runs, csv_text, read_metrics

SUMMARY_FIELDS = ["experiment", "metric", "reference", "range_low", "range_high", "source", "measured", "verdict",
                  "profile", "overrides", "run_id", "finished_at", "backend", "device", "epochs", "batch_size",
                  "params_total", "fit_seconds", "mean_epoch_seconds", "train_samples_per_second"]


def verdict(value: float | None, rng, profile: str = "full", overrides=()) -> str:
    """'within' / 'below' / 'above' the accepted range, qualified when the run was not the published setting."""
    if value is None:
        return "not measured"
    lo, hi = rng
    base = "within" if lo <= value <= hi else ("below" if value < lo else "above")
    if profile != "full":
        return f"{base} (quick profile, not comparable)"
    if overrides:
        return f"{base} (run with overrides)"
    return base


def pick_run(root: Path, experiment: str) -> tuple[Path, dict] | None:
    """The newest complete run, preferring the published setting (full profile, no overrides)."""
    best = None
    for run in complete_runs(root, experiment):
        m = read_metrics(run)
        rank = (m.get("profile") == "full") + (m.get("profile") == "full" and not m.get("overrides"))
        if best is None or rank >= best[0]:
            best = (rank, run, m)
    return None if best is None else (best[1], best[2])


def _raw_config(name: str) -> dict:
    try:
        data = yaml.safe_load((configs_dir() / f"{name}.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def collect(root: Path) -> tuple[list[dict], dict[str, list[tuple[str, Path, dict]]]]:
    """Summary rows (one per reference) and the runs of each comparison group."""
    names = sorted(set(experiment_names()) | {p.name for p in Path(root).iterdir() if p.is_dir()
                                              and not p.name.startswith(".") and complete_runs(root, p.name)}
                   if Path(root).is_dir() else set(experiment_names()))
    rows, groups = [], {}
    for name in names:
        cfg = _raw_config(name)
        picked = pick_run(root, name)
        run, m = picked if picked else (None, {})
        refs = cfg.get("reference") or m.get("references") or []
        group = (cfg.get("report") or {}).get("group")
        if group and run is not None:
            groups.setdefault(group, []).append((name, run, m))
        env, timing, measured = m.get("environment", {}), m.get("timing", {}), m.get("measured", {})
        common = {"experiment": name, "profile": m.get("profile"), "overrides": " ".join(m.get("overrides", [])),
                  "run_id": m.get("run_id"), "finished_at": m.get("finished_at"), "backend": env.get("backend"),
                  "device": env.get("device"), "epochs": m.get("epochs_run"), "batch_size": m.get("batch_size"),
                  "params_total": measured.get("params_total"), "fit_seconds": timing.get("fit_seconds"),
                  "mean_epoch_seconds": timing.get("mean_epoch_seconds"),
                  "train_samples_per_second": timing.get("train_samples_per_second")}
        for ref in refs or [{}]:
            value = measured.get(ref.get("metric")) if run else None
            rng = ref.get("range") or [None, None]
            rows.append({**common, "metric": ref.get("metric"), "reference": ref.get("value"),
                         "range_low": rng[0], "range_high": rng[1], "source": ref.get("source"),
                         "measured": value,
                         "verdict": (verdict(value, rng, m.get("profile"), m.get("overrides")) if run and ref
                                     else "not run yet" if ref else "no reference")})
    return rows, groups


def _num(v) -> str:
    if v is None or v == "":
        return "–"
    v = float(v)
    if v.is_integer() and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def group_section(root: Path, group: str, members: list[tuple[str, Path, dict]]) -> list[str]:
    """A comparison table and an overlay of validation curves for experiments the lectures set side by side."""
    import csv

    from cnnlab import plots

    lines = [f"## {group}", "", "| Experiment | Params | Best validation (epoch) | Test accuracy | Test loss | "
             "Mean epoch (s) | Profile |", "|---|---:|---|---:|---:|---:|---|"]
    series = {}
    for name, run, m in members:
        best = m.get("best_val") or {}
        meas = m.get("measured", {})
        lines.append(f"| {name} | {_num(meas.get('params_total'))} | {best.get('monitor', '–')} "
                     f"{_num(best.get('value'))} ({best.get('epoch', '–')}) | {_num(meas.get('test_accuracy'))} | "
                     f"{_num(meas.get('test_loss'))} | {m.get('timing', {}).get('mean_epoch_seconds') or 0:.1f} | "
                     f"{m.get('profile')} |")
        with open(run / "history.csv", newline="") as f:
            hist_rows = list(csv.DictReader(f))
        series[name] = {k: [float(r[k]) for r in hist_rows if r.get(k) not in (None, "")] for k in hist_rows[0]} \
            if hist_rows else {}
    keys = [k for k in ("val_accuracy", "val_loss") if any(k in s for s in series.values())]
    if keys:
        png = Path(root) / "groups" / f"{_slug(group)}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(png, plots.overlay(series, keys, group))
        lines += ["", f"![{group}](groups/{png.name})"]
    return lines + [""]


def write_summary(root: Path) -> tuple[Path, Path]:
    """Regenerate results/summary.csv and results/summary.md from the runs on disk."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows, groups = collect(root)
    csv_path, md_path = root / "summary.csv", root / "summary.md"
    atomic_write(csv_path, csv_text(rows, SUMMARY_FIELDS))
    md = ["# cnnlab: measured vs published", "",
          f"Generated by `cnnlab compare` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from the newest "
          "complete run of each experiment (full profile without overrides preferred). Raw numbers: "
          "[summary.csv](summary.csv). Each experiment's folder holds its config, history, parameter table and curves.",
          "", "| Experiment | Metric | Reference | Source | Accepted range | Measured | Verdict | Run (UTC date) |",
          "|---|---|---:|---|---|---:|---|---|"]
    for r in rows:
        run_link = (f"[{(r['finished_at'] or '')[:10] or r['run_id']}]({r['experiment']}/{r['run_id']}/)"
                    if r["run_id"] else "–")
        rng = f"{_num(r['range_low'])} – {_num(r['range_high'])}" if r["range_low"] is not None else "–"
        md.append(f"| {r['experiment']} | {r['metric'] or '–'} | {_num(r['reference'])} | {r['source'] or '–'} | "
                  f"{rng} | {_num(r['measured'])} | {r['verdict']} | {run_link} |")
    md.append("")
    for group, members in groups.items():
        md += group_section(root, group, members)
    weights = []
    for r in rows:
        if not r["run_id"] or any(w.startswith(f"- {r['experiment']}:") for w in weights):
            continue
        used = read_metrics(root / r["experiment"] / r["run_id"]).get("pretrained") or []
        if used:
            parts = [", ".join(f"{k} {v}" for k, v in u.items() if k not in ("where",)) for u in used]
            local = any(u.get("weights") not in (None, "imagenet") for u in used)
            weights.append(f"- {r['experiment']}: " + "; ".join(parts) + (
                " — a local weights file, not the Caffe-converted ImageNet weights that Keras downloads with "
                "weights='imagenet' and the book used, so its numbers may differ from the book's" if local else ""))
    if weights:
        md += ["## Pretrained weights and preprocessing", ""] + weights + [""]
    pictures = []
    for name in dict.fromkeys(r["experiment"] for r in rows if r["run_id"]):
        run_id = next(r["run_id"] for r in rows if r["experiment"] == name and r["run_id"])
        links = [f"[curves]({name}/{run_id}/curves.png)", f"[parameters]({name}/{run_id}/params.md)"]
        if (root / name / run_id / "explain" / "README.md").is_file():
            links.append(f"[inside the model: saliency, Grad-CAM, activations, filters]({name}/{run_id}/explain/)")
        pictures.append(f"- {name}: " + ", ".join(links))
    if pictures:
        md += ["## Pictures of each run", ""] + pictures + [""]
    for extra, what in (("arith.md", "the lectures' calculators worked through Keras"),
                        ("zoo.md", "parameters of the classic architectures"),
                        ("bench.md", "cnnlab vs plain Keras training time")):
        if (root / extra).is_file():
            md.append(f"- [{extra}]({extra}): {what}")
    atomic_write(md_path, "\n".join(md).rstrip() + "\n")
    return csv_path, md_path
