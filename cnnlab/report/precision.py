"""The precision study: does `mixed_bfloat16` train each family to the same numbers as float32? Per family, the
headline metric's mean ± std over the seeds in each precision, the difference with its 95% Welch interval, and
whether it lies within the seeds' spread — the test a family must pass before `train.precision: auto` becomes its
full profile's default (results/precision.md and .csv, `cnnlab precision`).

Reference: issue 13 ("prove equivalence before making it a default": mnist, imdb_conv1d, cats_dogs_scratch and
kim_mr CNN-rand and CNN-static on fold 0, >= 3 seeds in each precision); Welch (1947) for two means of unequal
variance.
Trap: a float32 run and a bfloat16 run of one seed are *not* a pair — the first rounding difference sends them
down different trajectories, so they are as independent as two seeds — hence Welch's two-sample interval, not
the paired one of `cnnlab ab`; and the interval alone cannot prove equivalence (with 3 seeds it is wide enough
to contain 0 for most real differences), so the verdict also asks the difference to be no larger than the seeds'
own spread.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from cnnlab.config.experiment import load, to_plain
from cnnlab.report.compare import setting_digest, setting_overrides
from cnnlab.report.verdicts import t975
from cnnlab.store.files import atomic_write
from cnnlab.store.results import complete_runs, precision_of, read_metrics

FULL, HALF = "float32", "mixed_bfloat16"
STUDY_DIR = "precision_study"  # results/precision_study/<experiment>/: the study's own runs (its extra seeds and
# its bfloat16 arm), kept out of the reproduction's run sets; the float32 arm also counts the reproduction's runs


@dataclass(frozen=True)
class Case:
    """One family of the study: the experiment that stands for it, its headline metric, the fold it runs on,
    and the experiments whose full-profile precision its verdict decides (fnmatch patterns over references)."""

    ref: str  # an experiment reference, kim_mr:static
    metric: str = "test_accuracy"
    fold: int | None = None  # a cross-validated set: the one fold all seeds run on
    governs: tuple[str, ...] = ()


STUDY = (
    Case("mnist", governs=("mnist*",)),
    # not imdb_conv1d_faithful: its Keras 2 accuracy rounds the raw linear output, a precision-sensitive step
    Case("imdb_conv1d", governs=("imdb_conv1d", "imdb_conv1d:*", "imdb_capacity*")),
    Case("cats_dogs_scratch", governs=("cats_dogs_*",)),
    Case("vgg16_features", governs=("vgg16_*",)),
    Case("kim_mr", fold=0, governs=("kim_*",)),  # CNN-rand and CNN-non-static: the embeddings train
    Case("kim_mr:static", fold=0, governs=("kim_*:static*", "kim_*:multichannel*")),
)


def governing(ref: str, study=STUDY) -> Case | None:
    """The case whose verdict decides `ref`'s full-profile precision: the last in `study` with a matching
    pattern (Kim's static and multichannel variants are listed after the family's rand); None: not studied,
    float32."""

    found = [case for case in study if any(fnmatchcase(ref, p) for p in case.governs)]
    return found[-1] if found else None


def _fold(m: dict, default: int | None) -> int | None:
    fold = (m.get("repeat") or {}).get("fold")
    for o in m.get("overrides") or []:
        if o.split("=", 1)[0].strip() == "data.options.fold":
            fold = o.split("=", 1)[1].strip()
    return default if fold is None else int(fold)


def arms(root: Path, case: Case) -> dict[str, list[tuple[Path, dict]]]:
    """precision policy → the runs of `case` in it, from results/<experiment> and results/precision_study/
    <experiment>: complete, full profile, today's config but for the precision, no override but seed, fold and
    train.precision, on the case's fold; one per seed (the newest)."""
    exp = load(case.ref, [], "full", keras=False)
    want = setting_digest(to_plain(exp.config))
    default_fold = getattr(exp.config.data.options, "fold", None)
    out: dict[str, dict] = {}
    runs = [*complete_runs(Path(root), exp.config.name), *complete_runs(Path(root) / STUDY_DIR, exp.config.name)]
    for run in sorted(runs, key=lambda r: r.name):  # oldest first: a newer run of a seed replaces it
        m = read_metrics(run)
        extra = setting_overrides(m.get("overrides") or [])
        wanted_fold = case.fold if case.fold is not None else default_fold
        if m.get("profile") != "full" or extra or _fold(m, default_fold) != wanted_fold:
            continue
        try:
            plain = to_plain(load(run / "config.yaml", keras=False).config)
        except Exception:  # a config no longer readable by today's schema is another setting
            continue
        value = (m.get("measured") or {}).get(case.metric)
        if setting_digest(plain) != want or not isinstance(value, (int, float)):
            continue
        out.setdefault(precision_of(m), {})[m.get("seed")] = (run, m)
    return {policy: list(by_seed.values()) for policy, by_seed in out.items()}


@dataclass(frozen=True)
class Arm:
    """One precision's runs of a case: the metric's n, mean and std, the seeds, and each run's machine and wall
    time (a wall time compares precisions only on the same machine)."""

    n: int
    mean: float
    std: float
    seeds: tuple
    walls: tuple[tuple[str, float], ...]  # (device, wall seconds) of each run that recorded one
    machines: tuple[str, ...] = ()  # every run's device (walls leaves resumed runs out)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(sorted({*self.machines, *(d for d, _ in self.walls)}))

    def wall_on(self, devices) -> float | None:
        """The mean wall time of the runs made on `devices`."""
        got = [w for d, w in self.walls if d in devices]
        return statistics.fmean(got) if got else None

    @classmethod
    def of(cls, runs: list[tuple[Path, dict]], metric: str) -> Arm:
        values = [float(m["measured"][metric]) for _, m in runs]
        walls = [  # a resumed run's wall time covers only its last epochs: not a run's time
            ((m.get("environment") or {}).get("device") or "?", (m.get("timing") or {}).get("wall_seconds"))
            for _, m in runs
            if not m.get("resumed_from_epoch")
        ]
        return cls(
            len(values),
            statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else 0.0,
            tuple(sorted((m.get("seed") for _, m in runs), key=str)),
            tuple((d, float(w)) for d, w in walls if isinstance(w, (int, float))),
            tuple((m.get("environment") or {}).get("device") or "?" for _, m in runs),
        )


def welch(a: Arm, b: Arm) -> tuple[float, tuple[float, float] | None]:
    """b − a and its two-sided 95% Welch interval (None with fewer than two runs on a side); the degrees of
    freedom by Welch–Satterthwaite, rounded down to the tabulated t (conservative)."""
    diff = b.mean - a.mean
    if a.n < 2 or b.n < 2:
        return diff, None
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, (diff, diff)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    half = t975(max(1, math.floor(df))) * se
    return diff, (diff - half, diff + half)


MIN_SEEDS = 3


def verdict(a: Arm | None, b: Arm | None) -> tuple[str, dict]:
    """'equivalent' (the Welch interval contains 0 and |b − a| is no larger than the seeds' spread, the pooled
    standard deviation), 'differs', or 'too few runs' (fewer than MIN_SEEDS on a side), with the numbers."""
    if a is None or b is None or a.n < MIN_SEEDS or b.n < MIN_SEEDS:
        return "too few runs", {}
    diff, ci = welch(a, b)
    spread = math.sqrt((a.std**2 + b.std**2) / 2)
    ok = ci is not None and ci[0] <= 0 <= ci[1] and abs(diff) <= spread
    return ("equivalent" if ok else "differs"), {"diff": diff, "low": ci[0], "high": ci[1], "spread": spread}


def table(root: Path, study=STUDY):
    """One row per family: each arm's n, mean, std, seeds, devices and wall time; the difference, its interval,
    the spread and the verdict (a pandas DataFrame of raw numbers)."""
    import pandas as pd

    rows = []
    for case in study:
        got = arms(root, case)
        a = Arm.of(got[FULL], case.metric) if got.get(FULL) else None
        b = Arm.of(got[HALF], case.metric) if got.get(HALF) else None
        word, numbers = verdict(a, b)
        row = {"experiment": case.ref, "metric": case.metric, "fold": case.fold, "governs": " ".join(case.governs)}
        for side, arm in (("f32", a), ("bf16", b)):
            row |= {
                f"{side}_n": arm.n if arm else 0,
                f"{side}_mean": arm.mean if arm else None,
                f"{side}_std": arm.std if arm else None,
                f"{side}_seeds": " ".join(map(str, arm.seeds)) if arm else "",
                f"{side}_device": "; ".join(arm.devices) if arm else "",
            }
        same = sorted(set(a.devices) & set(b.devices)) if a and b else []  # wall times only where both ran
        row |= {
            "wall_device": "; ".join(same),
            "f32_wall_seconds": a.wall_on(same) if same else None,
            "bf16_wall_seconds": b.wall_on(same) if same else None,
        }
        row |= {k: numbers.get(k) for k in ("diff", "low", "high", "spread")} | {"verdict": word}
        row["full_profile_precision"] = "auto" if word == "equivalent" else "float32"
        rows.append(row)
    return pd.DataFrame(rows)


def _num(x, fmt: str = ".4f") -> str:
    return "–" if _nan(x) else format(x, fmt)


def markdown(df) -> str:
    """results/precision.md: the table, and what each verdict decides."""
    lines = [
        "# Precision study: mixed_bfloat16 against float32",
        "",
        "Generated by `cnnlab precision` from the runs under results/ and results/precision_study/ (full profile, "
        "today's config but for "
        "`train.precision`, no other override; Kim on one fold, several seeds). A family is **equivalent** when "
        "the 95% Welch interval of the difference contains 0 *and* the difference is no larger than the seeds' "
        f"own spread (pooled std); at least {MIN_SEEDS} seeds in each precision. Only an equivalent family "
        "takes `train.precision: auto` as its full profile's default (bfloat16 where the machine computes it "
        "natively, float32 elsewhere); every other stays float32, and every quick profile is float32 "
        "(tests/test_precision_study.py holds the configs to this table). Wall times include data loading and, "
        "for vgg16_features, the first run's feature extraction (later runs read the cache); a resumed run's is left "
        "out, and most were measured beside other work on the same two cores: indicative only.",
        "",
        "| experiment (metric) | float32: mean ± std (n) | mixed_bfloat16: mean ± std (n) | bf16 − f32 [95% Welch] "
        "| seeds' spread | verdict | wall f32 → bf16 (same machine) | full profile of | takes |",
        "|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for r in df.to_dict("records"):
        label = r["experiment"] + ("" if _nan(r["fold"]) else f" fold {int(r['fold'])}")
        f32 = f"{_num(r['f32_mean'])} ± {_num(r['f32_std'])} ({r['f32_n']})" if r["f32_n"] else "–"
        bf16 = f"{_num(r['bf16_mean'])} ± {_num(r['bf16_std'])} ({r['bf16_n']})" if r["bf16_n"] else "–"
        diff = "–" if _nan(r["diff"]) else f"{r['diff']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}]"
        wall = (
            f"{r['f32_wall_seconds']:.0f} s → {r['bf16_wall_seconds']:.0f} s"
            if not (_nan(r["f32_wall_seconds"]) or _nan(r["bf16_wall_seconds"]))
            else "–"
        )
        lines.append(
            f"| {label} ({r['metric']}) | {f32} | {bf16} | {diff} | {_num(r['spread'])} | **{r['verdict']}** | "
            f"{wall} | {', '.join(f'`{g}`' for g in r['governs'].split())} | `{r['full_profile_precision']}` |"
        )
    lines += [
        "",
        "Machines (an arm's runs may come from another machine than the other arm's: the metric is the same "
        "setting on either, but a wall time is compared only between runs of one machine):",
        "",
    ]
    for r in df.to_dict("records"):
        lines.append(
            f"- {r['experiment']}: float32 on {r['f32_device'] or '–'} (seeds {r['f32_seeds'] or '–'}); "
            f"mixed_bfloat16 on {r['bf16_device'] or '–'} (seeds {r['bf16_seeds'] or '–'})"
        )
    return "\n".join(lines) + "\n"


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def write(root: Path) -> tuple[Path, Path]:
    """results/precision.csv (raw numbers) and results/precision.md (the view)."""
    df = table(Path(root))
    csv, md = Path(root) / "precision.csv", Path(root) / "precision.md"
    atomic_write(csv, df.to_csv(index=False))
    atomic_write(md, markdown(df))
    return csv, md
