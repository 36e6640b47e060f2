"""The summary: every experiment's latest run set beside its published references (summary.csv and summary.md).

Reference: timm's results/*.csv (raw numbers in CSV, formatting only in the Markdown view).
Trap: a quick-profile run or a run with CLI overrides is not the published setting; its verdict says so
instead of claiming (or denying) a reproduction.
"""

from __future__ import annotations

import hashlib
import re
import statistics
import time
from pathlib import Path

import yaml

from cnnlab.config.experiment import PARAM_METRICS, experiment_refs, load, to_plain
from cnnlab.errors import CnnlabError
from cnnlab.report import remaining, tables, verdicts
from cnnlab.report.verdicts import metric_label
from cnnlab.store.files import atomic_write
from cnnlab.store.results import complete_runs, history_columns, precision_of, read_history, read_metrics

SUMMARY_FIELDS = [
    "experiment",
    "metric",
    "reference",
    "range_low",
    "range_high",
    "source",
    "statistic",
    "substitution",
    "measured",
    "measured_std",
    "n_runs",
    "dead_starts",
    "seeds",
    "verdict",
    "config_changed",
    "profile",
    "overrides",
    "run_id",
    "finished_at",
    "backend",
    "device",
    "precision",
    "epochs",
    "batch_size",
    "params_total",
    "wall_seconds",
    "fit_seconds",
    "mean_epoch_seconds",
    "train_samples_per_second",
]


# Overrides that repeat the same experiment rather than change it: runs differing only in these form a run set,
# reported as mean ± std (seeds; cross-validation folds for Kim's datasets).
SWEEP_KEYS = ("seed", "data.options.fold")


def _key(override: str) -> str:
    return override.split("=", 1)[0].strip()


def run_verdicts(run_dir: Path, metrics: dict, profile: str, overrides) -> list[str]:
    """One line per reference of a finished run: its measured value (the reference's statistic), the reference,
    the accepted range and the verdict, as `cnnlab run` prints them after the results folder."""
    columns = history_columns(read_history(Path(run_dir) / "history.csv"))
    lines = []
    for ref in metrics.get("references") or []:
        measured = verdicts.value(ref, metrics.get("measured") or {}, columns, metrics.get("directions"))
        lo, hi = ref["range"]
        judged = verdicts.verdict(
            measured, ref["range"], profile, setting_overrides(overrides), ref.get("substitution")
        )
        lines.append(
            f"  {metric_label(ref)}: measured {_num(measured)}; reference {_num(ref['value'])} "
            f"({ref['source']}), accepted [{_num(lo)}, {_num(hi)}]: {judged}"
        )
    return lines


PRECISION_KEYS = ("precision", "mixed_precision")  # train's keys that request a precision, not a setting


def without_precision(train: dict) -> dict:
    """A plain config's `train` without its precision request (a run set is split by the precision *policy*
    its runs trained under: `signature`)."""
    return {k: v for k, v in train.items() if k not in PRECISION_KEYS}


def setting_overrides(overrides) -> tuple[str, ...]:
    """The overrides that change the setting: all but seed and fold, which repeat it, and the precision request,
    which is judged by the policy it became (`signature`): `train.precision=float32` on a float32 config changes
    nothing, and a bfloat16 run is a run set of its own whether its config or its command line asked for it."""
    dropped = (*SWEEP_KEYS, *(f"train.{k}" for k in PRECISION_KEYS))
    return tuple(sorted(o for o in overrides if _key(o) not in dropped))


def signature(m: dict) -> tuple:
    """What makes two runs the same setting: profile, the overrides other than seed and fold, and the precision
    they ran in."""
    return (m.get("profile"), setting_overrides(m.get("overrides", [])), precision_of(m))


def pick_run(root: Path, experiment: str) -> tuple[Path, dict] | None:
    """The newest complete run, preferring the published setting (full profile, no overrides)."""
    best = None
    for run in complete_runs(root, experiment):
        m = read_metrics(run)
        rest = signature(m)[1]
        rank = (m.get("profile") == "full") + (m.get("profile") == "full" and not rest)
        if best is None or rank >= best[0]:
            best = (rank, run, m)
    return None if best is None else (best[1], best[2])


_SETTING_HASHES: dict[Path, str | None] = {}


def setting_hash(run: Path) -> str | None:
    """What decides a run's numbers other than its seed and fold, hashed from its own config.yaml by today's
    schema (so that a key added since, at its default, changes nothing); None if the file no longer loads.

    Trap: two runs of one experiment with the same profile and no overrides can still differ — the config was
    edited between them (Keras 3's RMSprop, then Keras 2.0.8's): they must not be averaged into one run set."""
    run = Path(run)
    if run not in _SETTING_HASHES:
        try:
            plain = to_plain(load(run / "config.yaml", keras=False).config)
        except (CnnlabError, OSError):
            _SETTING_HASHES[run] = None
        else:
            _SETTING_HASHES[run] = setting_digest(plain)
    return _SETTING_HASHES[run]


def current_setting(ref: str | None, m: dict) -> str | None:
    """The setting digest that the run described by metrics `m` would have if started now: today's config `ref`
    (an experiment reference, kim_mr:static) with the run's own profile and overrides (None when they no longer
    load)."""
    if ref is None:
        return None
    try:
        exp = load(ref, list(m.get("overrides") or []), m.get("profile") or "full", keras=False)
    except CnnlabError:
        return None
    return setting_digest(to_plain(exp.config))


def setting_digest(plain: dict) -> str:
    """SHA-256 (16 hex digits) of a plain config's name, data, model and train, without the fold and without the
    precision request (a run set is split by the precision *policy* its runs trained under: `signature`)."""

    decisive = {k: plain[k] for k in ("name", "data", "model", "train")}
    decisive["train"] = without_precision(decisive["train"])
    options = dict(decisive["data"].get("options") or {})
    options.pop("fold", None)
    decisive["data"] = {**decisive["data"], "options": options}
    text = yaml.safe_dump(decisive, sort_keys=True, default_flow_style=None, width=100)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_set(root: Path, experiment: str, picked: tuple[Path, dict] | None = None) -> list[tuple[Path, dict]]:
    """The picked run (`pick_run`'s, unless given) and every other complete run of the same setting, one per
    (seed, fold): the newest."""
    picked = picked or pick_run(root, experiment)
    if picked is None:
        return []
    sig, members = signature(picked[1]), {}
    setting = setting_hash(picked[0])
    for run in complete_runs(root, experiment):  # oldest first: a newer run of the same seed/fold replaces it
        m = read_metrics(run)
        if signature(m) == sig and setting_hash(run) == setting:
            ident = (
                tuple(sorted(m["repeat"].items()))
                if m.get("repeat")
                # the values, however given
                else (m.get("seed"), tuple(sorted(o for o in m.get("overrides", []) if _key(o) in SWEEP_KEYS)))
            )
            members[ident] = (run, m)
    return list(members.values())


def dead_start(run: Path) -> bool:
    """A run that never learned: the training loss the same in every epoch (two or more) to within float32
    rounding of its mean (a relative 1e-6, about 8 ulps at the loss's size).

    Reference: DLwP notebook 6.4's Conv1D (the slide's linear `Dense(1)` under binary cross-entropy). Keras
    2.0.8's `K.binary_crossentropy` (keras/backend/tensorflow_backend.py) and Keras 3's both clip the output to
    [1e-7, 1 - 1e-7] first, so where every initial output lies outside that band no gradient flows, ever.
    Trap: that is a property of the reference's model, not noise around its number — measured on
    imdb_conv1d_faithful under TensorFlow, seeds 2 to 5 start with every output below 0 — so a verdict leaves
    such runs out and says how many; averaging them in would report "below" for a model that did not train. A
    seed with a few outputs inside the band dies in its first steps instead (seed 6: 68 of 20,000 reviews, loss
    8.0074739 in epoch 1 and 8.0074730 ever after), which an exact-equality test would count as learning.
    """
    loss = history_columns(read_history(run / "history.csv")).get("loss") or []
    return len(loss) >= 2 and max(loss) - min(loss) <= 1e-6 * max(abs(v) for v in loss)


def _dead_starts(count: int) -> str:
    """'1 dead start', '2 dead starts'."""
    return f"{count} dead start{'s' if count > 1 else ''}"


def _dead_note(count: int) -> str:
    """The Measured cell's word on the runs `dead_start` left out of it (none: nothing)."""
    return f"; {_dead_starts(int(count))} left out (training loss never moved)" if count else ""


def aggregate(runs: list[tuple[Path, dict]]) -> dict[str, tuple[float, float, int]]:
    """metric → (mean, sample standard deviation (0 for one run), number of runs)."""

    values: dict[str, list[float]] = {}
    for _, m in runs:
        for k, v in (m.get("measured") or {}).items():
            if isinstance(v, (int, float)):
                values.setdefault(k, []).append(float(v))
    return {k: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v)) for k, v in values.items()}


def reference_stats(ref: dict, runs: list[tuple[Path, dict]]) -> tuple[float | None, float | None, int]:
    """(mean, sample std (0 for one run), n) of the reference's statistic over a run set."""

    values = []
    for run, m in runs:
        v = verdicts.value(
            ref, m.get("measured") or {}, history_columns(read_history(run / "history.csv")), m.get("directions")
        )
        if v is not None:
            values.append(float(v))
    if not values:
        return None, None, 0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def experiment_configs() -> dict[str, dict]:
    """Results name → the plain config of every experiment and variant in configs/ (references, report)."""
    out = {}
    for name, ref in experiment_refs().items():
        try:
            out[name] = to_plain(load(ref, keras=False).config)
        except CnnlabError:
            out[name] = {}
    return out


def collect(root: Path):
    """The summary as a tidy DataFrame (one row per experiment × reference, SUMMARY_FIELDS, raw values; None
    where there is nothing), the runs of each comparison group, the configs, and each experiment's run set."""
    import pandas as pd

    configs = experiment_configs()
    names = sorted(
        set(configs)
        | {
            p.name
            for p in Path(root).iterdir()
            if p.is_dir() and not p.name.startswith(".") and complete_runs(root, p.name)
        }
        if Path(root).is_dir()
        else set(configs),
        key=lecture_key,
    )
    refs_by_name = experiment_refs()
    rows, groups, sets = [], {}, {}
    for name in names:
        cfg = configs.get(name, {})
        picked = pick_run(root, name)
        run, m = picked or (None, {})
        runs = sets[name] = run_set(root, name, picked)
        dead, live = [], []
        for r in runs:  # one read of each history
            (dead if dead_start(r[0]) else live).append(r)
        refs = cfg.get("reference") or m.get("references") or []
        group = (cfg.get("report") or {}).get("group")
        if group and run is not None:
            groups.setdefault(group, []).append((name, run, m))
        env, timing, measured = m.get("environment", {}), m.get("timing", {}), m.get("measured", {})
        common = {
            "experiment": name,
            "profile": m.get("profile"),
            "overrides": " ".join(setting_overrides(m.get("overrides", []))),
            "n_runs": len(live),
            "dead_starts": len(dead),
            "seeds": " ".join(sorted({str(r[1].get("seed")) for r in runs})),
            "run_id": m.get("run_id"),
            "finished_at": m.get("finished_at"),
            "backend": env.get("backend"),
            "device": env.get("device"),
            "precision": precision_of(m) if m else None,
            "epochs": m.get("epochs_run"),
            "batch_size": m.get("batch_size"),
            "params_total": measured.get("params_total"),
            "wall_seconds": timing.get("wall_seconds"),
            "fit_seconds": timing.get("fit_seconds"),
            "mean_epoch_seconds": timing.get("mean_epoch_seconds"),
            "train_samples_per_second": timing.get("train_samples_per_second"),
        }
        ran, now = (setting_hash(run), current_setting(refs_by_name.get(name), m)) if run and cfg else (None, None)
        stale = bool(ran and now and ran != now)  # unknown (a config.yaml that no longer loads) is not "changed"
        common["config_changed"] = stale
        for ref in refs or [{}]:
            mean, std, n = reference_stats(ref, live) if run and ref else (None, None, 0)
            rng = ref.get("range") or [None, None]
            rows.append(
                {
                    **common,
                    "metric": metric_label(ref) if ref else None,
                    "reference": ref.get("value"),
                    "statistic": verdicts.statistic_of(ref) if ref else None,
                    "substitution": ref.get("substitution"),
                    "range_low": rng[0],
                    "range_high": rng[1],
                    "source": ref.get("source"),
                    "measured": mean,
                    "measured_std": std if n > 1 else None,
                    "verdict": (
                        "stopped: NaN loss"
                        if m.get("status") == "nan_loss"
                        else f"never learned ({_dead_starts(len(dead))})"
                        if run and ref and not live
                        else verdicts.set_verdict(
                            mean, std, n, rng, m.get("profile"), signature(m)[1], ref.get("substitution")
                        )
                        + (" (run before the config changed)" if stale else "")
                        if run and ref
                        else "not run yet"
                        if ref
                        else "no reference"
                    ),
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_FIELDS, dtype=object), groups, configs, sets


def paper_tables(configs: dict[str, dict], sets: dict[str, list[tuple[Path, dict]]]) -> list[str]:
    """Tables in a paper's layout (report.table/row/column), e.g. Kim (2014) Table 2: measured mean ± std over
    folds and seeds, and the paper's number from the experiment's first reference; a tidy frame of cells
    (table, row, column, cell) pivoted into each table."""
    import pandas as pd

    cells, layout = [], {}
    for name, cfg in configs.items():
        rep = cfg.get("report") or {}
        if not (rep.get("table") and rep.get("row") and rep.get("column")):
            continue
        ref = (cfg.get("reference") or [{}])[0]
        runs = sets.get(name, [])
        mean, std, n = reference_stats(ref, runs) if ref else (None, None, 0)
        paper = _num(ref.get("value")) if ref.get("value") is not None else "–"
        if n:
            prof = runs[-1][1].get("profile")
            spread = f" ± {std:.3f}" if n > 1 else ""
            text = f"{mean:.3f}{spread} (n={n}{', quick' if prof != 'full' else ''}) / {paper}"
        else:
            text = f"– / {paper}"
        cells.append({"table": rep["table"], "row": rep["row"], "column": rep["column"], "cell": text})
        info = layout.setdefault(rep["table"], {"columns": (), "caption": None})
        info["columns"] = info["columns"] or tuple(rep.get("columns") or ())
        info["caption"] = info["caption"] or rep.get("caption")
    frame = pd.DataFrame(cells, columns=["table", "row", "column", "cell"])
    lines = []
    for title, part in frame.groupby("table", sort=False):
        present = list(dict.fromkeys(part["column"]))
        cols = [c for c in layout[title]["columns"] if c in present] + [
            c for c in present if c not in layout[title]["columns"]
        ]
        table = (
            part.drop_duplicates(["row", "column"], keep="last")
            .pivot(index="row", columns="column", values="cell")
            .reindex(index=list(dict.fromkeys(part["row"])), columns=cols)
            .fillna("")
        )
        lines += [
            f"## {title}",
            "",
            "Each cell: measured mean ± std over folds/seeds (n runs) / the paper's number."
            + (f" {layout[title]['caption']}" if layout[title]["caption"] else ""),
            "",
        ]
        lines += tables.markdown(table.rename_axis(index="Model", columns=None).reset_index(), "l" + "r" * len(cols))
        lines.append("")
    return lines


def _num(v) -> str:
    if v is None or v == "":
        return "–"
    v = float(v)
    if v.is_integer() and abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"


def _measured(r) -> str:
    """A summary row's measured cell: the mean, ± the std over its n runs, and the dead starts left out. A count
    the same in every run (a parameter count) is that count in all n, not '55,744 ± 0.0000'."""
    spread = ""
    if r.measured_std is not None:
        same = r.measured_std == 0 and float(r.measured).is_integer()
        spread = f" (all {r.n_runs} runs)" if same else f" ± {_num(r.measured_std)} (n={r.n_runs})"
    return _num(r.measured) + spread + ("" if r.metric in PARAM_METRICS else _dead_note(r.dead_starts))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def mean_curves(runs: list[tuple[Path, dict]]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per history column, the mean over a run set's runs and (with 2 or more) their standard deviation, epoch by
    epoch up to the shortest run."""

    histories = [history_columns(read_history(run / "history.csv")) for run, _ in runs]
    histories = [h for h in histories if h]
    if not histories:
        return {}, {}
    means, stds = {}, {}
    for key in histories[0]:
        cols = [[v for v in h.get(key, []) if isinstance(v, (int, float))] for h in histories]
        n = min(map(len, cols))
        if n == 0:
            continue
        means[key] = [statistics.fmean(c[i] for c in cols) for i in range(n)]
        if len(cols) > 1:
            stds[key] = [statistics.stdev(c[i] for c in cols) for i in range(n)]
    return means, stds


def group_section(
    root: Path,
    group: str,
    members: list[tuple[str, Path, dict]],
    configs: dict[str, dict] | None = None,
    sets: dict[str, list[tuple[Path, dict]]] | None = None,
) -> list[str]:
    """A comparison table and an overlay of validation curves for experiments the lectures set side by side:
    each curve the mean over the experiment's run set with a ± std band, its reference drawn on it, a run that
    is not the full profile marked in its label."""
    from cnnlab.report import plots  # matplotlib

    notes = [
        (c.get("report") or {}).get("group_note")
        for n, c in (configs or {}).items()
        if n in {name for name, _, _ in members}
    ]
    note = next((n for n in notes if n), None)
    import pandas as pd

    lines = [f"## {group}", "", *([note, ""] if note else [])]
    table = []
    series, curves, bands, references = {}, {}, {}, {}
    for name, run, m in members:
        series[name] = history_columns(read_history(run / "history.csv"))
        best = m.get("best_val") or {}
        meas = m.get("measured", {})
        val_loss = series[name].get("val_loss") or []
        low = f"{min(val_loss):.4f} ({val_loss.index(min(val_loss)) + 1})" if val_loss else "–"
        table.append(
            {
                "Experiment": name,
                "Params": _num(meas.get("params_total")),
                "Best validation (epoch)": f"{best.get('monitor', '–')} {_num(best.get('value'))} "
                f"({best.get('epoch', '–')})",
                "Lowest val_loss (epoch)": low,
                "Test accuracy": _num(meas.get("test_accuracy")),
                "Test loss": _num(meas.get("test_loss")),
                "Mean epoch (s)": f"{m.get('timing', {}).get('mean_epoch_seconds') or 0:.1f}",
                "Profile": m.get("profile"),
            }
        )
        runs = (sets or {}).get(name) or [(run, m)]
        label = (
            name
            + (f" ({m.get('profile')} profile)" if m.get("profile") != "full" else "")
            + (f" (n={len(runs)})" if len(runs) > 1 else "")
        )
        curves[label], bands[label] = mean_curves(runs)
        references[label] = [
            r
            for r in ((configs or {}).get(name, {}).get("reference") or m.get("references") or [])
            if isinstance(r, dict)
        ]
    lines += tables.markdown(pd.DataFrame(table, dtype=object), "lrllrrrl")
    wanted = next(
        (
            tuple((c.get("report") or {}).get("overlay") or ())
            for n, c in (configs or {}).items()
            if n in series and (c.get("report") or {}).get("overlay")
        ),
        (),
    ) or ("val_accuracy", "val_loss")
    keys = [k for k in wanted if any(k in s for s in series.values())]
    if keys:
        png = Path(root) / "groups" / f"{_slug(group)}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(png, plots.overlay(curves, keys, group, bands, references))
        lines += ["", f"![{group}](groups/{png.name})"]
    return lines + [""]


# The lectures' order (002: MNIST, pooling, capacity; 003: cats vs dogs, VGG16; 002/004: IMDB 1-D, Kim), by
# name prefix, longest first; anything else after them, alphabetically.
LECTURE_ORDER = (
    "mnist",
    "mnist_dense",
    "mnist_no_pooling",
    "imdb_capacity",
    "cats_dogs_scratch",
    "cats_dogs_augmented",
    "vgg16_features",
    "vgg16_augmented",
    "vgg16_finetune",
    "imdb_conv1d",
    "kim_mr",
    "kim_sst1",
    "kim_sst2",
    "kim_subj",
    "kim_trec",
    "kim_cr",
    "kim_mpqa",
    "kim",
)


def lecture_key(name: str) -> tuple:
    """Sort key: the position of the longest LECTURE_ORDER prefix of `name`, then the name."""
    matches = [
        (len(p), i)
        for i, p in enumerate(LECTURE_ORDER)
        if name == p
        or name.startswith(p + "_")
        or (p.endswith("_") and name.startswith(p))
        or (p == "kim" and name.startswith("kim_"))
    ]
    return (max(matches)[1] if matches else len(LECTURE_ORDER), name)


def human_seconds(seconds) -> str:
    """1 h 36 min · 9 min 50 s · 59 s · – (as people read a wall time)."""
    if seconds is None or seconds == "":
        return "–"
    s = int(round(float(seconds)))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s" if s < 600 else f"{s // 60} min"
    return f"{s} s"


def short_source(source: str | None, limit: int = 48) -> str:
    """The head of a reference's source ('DLwP §5.2.5', 'Kim (2014) Table 2, CNN-rand, MR'): the full quote
    stays in summary.md."""
    if not source:
        return "–"
    head = re.split(r" \((?!\d{4}\))|; |: ", source, maxsplit=1)[0].strip()  # keeps "Kim (2014) Table 2"
    if len(head) <= limit:
        return head
    cut = head[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + " …"


def published_setting(row) -> bool:
    """Whether a summary row measured the config as it stands: the full profile, no setting overrides, and made
    before no config change. Trap: a quick run 'below' its reference is not a shortfall, nor a 20-epoch one."""
    profile, overrides, changed = row.get("profile"), row.get("overrides"), row.get("config_changed")
    return (
        (profile == "full" or not isinstance(profile, str))  # None or NaN: a row that recorded no profile
        and not (isinstance(overrides, str) and overrides.strip())
        and changed not in (True, "True", "true")
    )


def outcome(row: dict) -> str:
    """The scoreboard's class of one summary row: reproduced, off with a substitution, off unexplained, stopped,
    measured only in another setting (quick profile, overrides, a config changed since), not run (and 'no
    reference')."""
    text = row.get("verdict") or ""
    if not row.get("run_id"):
        return "not run"
    if text.startswith("stopped"):
        return "stopped"
    if not published_setting(row):
        return "other setting"
    core = re.sub(r"^provisional \(n=\d+\): ", "", text)
    if core.startswith("within"):
        return "reproduced"
    if core.startswith(("below", "above")):
        return "off, substitution" if row.get("substitution") else "off, unexplained"
    return "no reference"


def scoreboard(frame) -> str:
    """'N of M references reproduced · …': every reference other than a parameter count, once (`frame`: the
    summary, collect's DataFrame)."""
    metric = frame["metric"]
    refs = frame[metric.notna() & ~metric.isin(PARAM_METRICS)]
    kinds = refs.apply(outcome, axis=1).value_counts() if len(refs) else {}
    count = lambda kind: int(kinds.get(kind, 0))  # noqa: E731
    measured = refs[refs["run_id"].notna()]
    provisional = int(measured["verdict"].fillna("").str.startswith("provisional").sum())
    params = frame[metric.isin(PARAM_METRICS) & frame["run_id"].notna()]
    params = params[params.apply(published_setting, axis=1)] if len(params) else params  # as the references
    exact = int((params.apply(outcome, axis=1) == "reproduced").sum()) if len(params) else 0
    parts = [
        f"**{count('reproduced')} of {len(refs)} references reproduced**",
        f"{count('off, substitution')} off with a declared substitution",
        f"{count('off, unexplained')} off, unexplained",
        f"{count('not run')} not run",
    ]
    if count("other setting"):
        parts.insert(
            -1, f"{count('other setting')} measured only in another setting (quick profile, overrides, an older config)"
        )
    if count("stopped"):
        parts.append(f"{count('stopped')} stopped (NaN loss)")
    return (
        " · ".join(parts)
        + f". {provisional} of the measured verdicts are provisional (fewer than 3 repeats)"
        + (f"; parameter counts: {exact} of {len(params)} exact." if len(params) else ".")
    )


def report_readme(frame, sections: list[str], left: list[str] = ()) -> str:
    """results/README.md: one line per experiment that has run (reference, measured mean ± std, verdict, parameters,
    epochs, time, device and backend, curves), then the lectures' comparisons and the paper tables."""
    import pandas as pd

    lines = [
        "# cnnlab results",
        "",
        f"Generated by `cnnlab compare` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from the complete "
        "runs in this folder. Each line is an experiment's newest setting (full profile preferred), measured "
        "as mean ± std over its seeds/folds when there are several; every reference with its source and the raw "
        "numbers are in [summary.md](summary.md) and [summary.csv](summary.csv).",
        "",
        scoreboard(frame),
        "",
        verdicts.RULE,
        "",
    ]
    ran = frame[frame["run_id"].notna()]
    # per experiment its first measured reference, a parameter count only if it has no other
    first = (
        ran.assign(_param=ran["metric"].isin(PARAM_METRICS))
        .sort_values("_param", kind="stable")
        .drop_duplicates("experiment")
    )
    first = first.iloc[sorted(range(len(first)), key=lambda i: lecture_key(first["experiment"].iloc[i]))]
    view = pd.DataFrame(
        {
            "Experiment": [f"[{r.experiment}]({r.experiment}/{r.run_id}/)" for r in first.itertuples()],
            "Reference": [f"{r.metric} {_num(r.reference)}" for r in first.itertuples()],
            "Source": [short_source(r.source) for r in first.itertuples()],
            "Measured": [_measured(r) for r in first.itertuples()],
            "Verdict": list(first["verdict"]),
            "Params": [_num(v) for v in first["params_total"]],
            "Epochs": [v or "–" for v in first["epochs"]],
            "Wall": [human_seconds(v) for v in first["wall_seconds"]],
            "Device, backend": [f"{r.device or '–'}, {r.backend or '–'}" for r in first.itertuples()],
            "Curves": [f"[png]({r.experiment}/{r.run_id}/curves.png)" for r in first.itertuples()],
        },
        dtype=object,
    )
    lines += tables.markdown(view, "lllrlrrrll")
    not_run = sorted(set(frame.loc[frame["run_id"].isna(), "experiment"]), key=lecture_key)
    if not_run:
        lines += ["", f"Not run yet ({len(not_run)}): " + ", ".join(not_run) + "."]
    return "\n".join(lines + [""] + list(left) + sections).rstrip() + "\n"


def summary_view(frame):
    """summary.md's table: every reference row of the summary with its range, measured mean ± std and verdict."""
    import pandas as pd

    def accepted(r) -> str:
        if r.range_low is None:
            return "–"
        return _num(r.range_low) if r.range_low == r.range_high else f"{_num(r.range_low)} – {_num(r.range_high)}"

    rows = list(frame.itertuples())
    return pd.DataFrame(
        {
            "Experiment": [r.experiment for r in rows],
            "Metric": [r.metric or "–" for r in rows],
            "Reference": [_num(r.reference) for r in rows],
            "Source": [r.source or "–" for r in rows],
            "Accepted range": [accepted(r) for r in rows],
            "Measured": [_measured(r) for r in rows],
            "Verdict": [r.verdict for r in rows],
            "Run (UTC date)": [
                f"[{(r.finished_at or '')[:10] or r.run_id}]({r.experiment}/{r.run_id}/)" if r.run_id else "–"
                for r in rows
            ],
        },
        columns=[
            "Experiment",
            "Metric",
            "Reference",
            "Source",
            "Accepted range",
            "Measured",
            "Verdict",
            "Run (UTC date)",
        ],
        dtype=object,
    )


def write_summary(root: Path) -> tuple[Path, Path]:
    """Regenerate results/summary.csv, results/summary.md and the report results/README.md from the runs on disk."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    frame, groups, configs, sets = collect(root)
    csv_path, md_path = root / "summary.csv", root / "summary.md"
    atomic_write(csv_path, frame.to_csv(index=False, lineterminator="\n"))
    md = [
        "# cnnlab: measured vs published",
        "",
        f"Generated by `cnnlab compare` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from the newest "
        "complete run of each experiment (full profile without overrides preferred). Raw numbers: "
        "[summary.csv](summary.csv). Each experiment's folder holds its config, history, parameter table and curves.",
        "",
        verdicts.RULE,
        "",
        *tables.markdown(summary_view(frame), "llrllrll"),
        "",
    ]
    rows = frame.to_dict("records")
    sections = []
    for group, members in groups.items():
        sections += group_section(root, group, members, configs, sets)
    sections += paper_tables(configs, sets)
    md += sections
    gpu_runs = int(frame.drop_duplicates("run_id")["device"].fillna("").str.contains("GPU").sum())
    left = remaining.section(root, order=lecture_key, gpu_runs=gpu_runs)
    atomic_write(root / "README.md", report_readme(frame, sections, left))
    weights = []
    for r in rows:
        if not r["run_id"] or any(w.startswith(f"- {r['experiment']}:") for w in weights):
            continue
        used = read_metrics(root / r["experiment"] / r["run_id"]).get("pretrained") or []
        if used:
            parts = [", ".join(f"{k} {v}" for k, v in u.items() if k not in ("where",)) for u in used]
            local = any(u.get("weights") not in (None, "imagenet") for u in used)
            weights.append(
                f"- {r['experiment']}: "
                + "; ".join(parts)
                + (
                    " — a local weights file, not the Caffe-converted ImageNet weights that Keras downloads with "
                    "weights='imagenet' and the book used, so its numbers may differ from the book's"
                    if local
                    else ""
                )
            )
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
    for extra, what in (
        ("arith.md", "the lectures' calculators worked through Keras"),
        ("zoo.md", "parameters of the classic architectures"),
        ("bench.md", "cnnlab vs plain Keras training time"),
        ("bench_images.md", "decoding, augmentation and quick-profile times of the image family"),
        ("bench_backends.md", "seconds per epoch under each Keras backend"),
        ("precision.md", "the precision study: which families train to the same numbers in bfloat16 (auto)"),
        ("bench_precision.md", "float32 against mixed_bfloat16, and what train.precision: auto picks"),
    ):
        if (root / extra).is_file():
            md.append(f"- [{extra}]({extra}): {what}")
    atomic_write(md_path, "\n".join(md).rstrip() + "\n")
    return csv_path, md_path


ENV_KEYS = ("backend", "backend_version", "keras", "python", "numpy", "device", "git_commit")


def setting_diff(ma: tuple[Path, dict], mb: tuple[Path, dict]) -> list[str]:
    """What makes two runs different settings rather than two measurements of one: profile, overrides other than
    seed/fold, precision, the config itself (its setting hash) and the number of epochs run; [] when the same."""
    (ra, a), (rb, b) = ma, mb
    out = []
    for what, va, vb in (
        ("profile", a.get("profile"), b.get("profile")),
        (
            "overrides",
            " ".join(setting_overrides(a.get("overrides") or [])) or "none",
            " ".join(setting_overrides(b.get("overrides") or [])) or "none",
        ),
        ("precision", precision_of(a), precision_of(b)),
        ("epochs", a.get("epochs_run"), b.get("epochs_run")),
    ):
        if va != vb:
            out.append(f"{what} {va} → {vb}")
    ha, hb = setting_hash(ra), setting_hash(rb)
    if ha and hb and ha != hb:
        out.append(f"config {ha} → {hb} (config.yaml differs)")
    return out


def compare_sets(
    a: Path,
    b: Path,
    metrics: tuple[str, ...] = ("test_accuracy", "val_accuracy", "test_loss"),
    problems: list[str] | None = None,
    curves_dir: Path | None = None,
) -> str:
    """Markdown: two result sets (two machines, backends, Keras versions) side by side, per experiment and
    metric: mean ± std (n) of each, the delta B − A, and a flag where |delta| exceeds the seed spread; rows of
    different settings (profile, config, epochs, precision) are marked with the difference and not judged.
    `problems` collects every row `--check` fails on; `curves_dir` gets A's and B's curves overlaid per experiment.

    Trap: with one run on a side there is no spread to compare with; such deltas are marked 'no spread', not
    passed as equal. A 5-epoch run against a 2-epoch quick run is not a difference of −0.14: it is two settings.
    """
    from cnnlab.report import plots  # matplotlib

    a, b = Path(a), Path(b)
    problems = problems if problems is not None else []
    for root in (a, b):
        if not root.is_dir():
            raise CnnlabError(
                f"{root}: no such results folder (give two result sets, e.g. results/ and another machine's results/)"
            )
    names = sorted(
        {
            p.name
            for root in (a, b)
            for p in root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and complete_runs(root, p.name)
        },
        key=lecture_key,
    )
    import pandas as pd

    lines = [
        f"# Result sets compared: A = {a}, B = {b}",
        "",
        "Mean ± sample std over the runs of a setting (n runs: seeds, folds). Flag: **beyond spread** when "
        "|B − A| exceeds the larger of the two standard deviations (and both sides have n ≥ 2); "
        "**different settings** when the two sides did not run the same setting (then the delta is not "
        "judged).",
        "",
    ]
    table, env_lines, pictures = [], [], []
    for name in names:
        sa, sb = run_set(a, name), run_set(b, name)
        if not sa or not sb:
            count_a, count_b = (f"{len(s)} runs" if s else "–" for s in (sa, sb))
            table.append((name, "–", count_a, count_b, "–", f"only in {'B' if not sa else 'A'}"))
            continue
        differs = setting_diff(sa[-1], sb[-1])
        ga, gb = aggregate(sa), aggregate(sb)
        for metric in metrics:
            if metric not in ga or metric not in gb:
                continue
            (ma, da, na), (mb, db, nb) = ga[metric], gb[metric]
            delta = mb - ma
            if differs:
                flag = "**different settings**: " + "; ".join(differs)
                problems.append(f"{name} {metric}: different settings ({'; '.join(differs)})")
            elif na < 2 or nb < 2:
                flag = "no spread (n=1)" if delta else "equal"
            elif abs(delta) > max(da, db):
                flag = "**beyond spread**"
                problems.append(f"{name} {metric}: B − A = {delta:+.4f} beyond the spread (std {max(da, db):.4f})")
            else:
                flag = "within spread"
            table.append(
                (name, metric, f"{ma:.4f} ± {da:.4f} ({na})", f"{mb:.4f} ± {db:.4f} ({nb})", f"{delta:+.4f}", flag)
            )
        ea, eb = sa[-1][1].get("environment", {}), sb[-1][1].get("environment", {})
        diff = [f"{k} {ea.get(k)} → {eb.get(k)}" for k in ENV_KEYS if ea.get(k) != eb.get(k)]
        if diff:
            env_lines.append(f"- {name}: " + "; ".join(diff))
        if curves_dir is not None:
            curves, bands = {}, {}
            for side, runs in (("A", sa), ("B", sb)):
                label = f"{side}: {name}" + (f" (n={len(runs)})" if len(runs) > 1 else "")
                curves[label], bands[label] = mean_curves(runs)
            keys = [k for k in ("val_accuracy", "val_loss") if all(k in c for c in curves.values())]
            if keys:
                png = Path(curves_dir) / f"{name}.png"
                png.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(png, plots.overlay(curves, keys, f"{name}: A = {a}, B = {b}", bands))
                pictures.append(f"- {name}: [{png.name}]({png.parent.name}/{png.name})")
    lines += tables.markdown(
        pd.DataFrame(table, columns=["Experiment", "Metric", "A", "B", "B − A", "Flag"], dtype=object), "llrrrl"
    )
    if env_lines:
        lines += ["", "## What differs between the runs (environment of the newest run of each side)", ""] + env_lines
    if pictures:
        lines += ["", "## Curves of A and B overlaid (mean ± std over the run set)", ""] + pictures
    return "\n".join(lines) + "\n"
