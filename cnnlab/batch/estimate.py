"""Wall-time estimates for runs that never ran here, modelled on the runs that did.

`reproduce --dry-run` times a job by the newest earlier run of the same experiment; most of the suite's variants
(Kim's table: seven sets × eight variants) have none. Their cost is modelled from the committed runs as two
factors, one per base experiment (the dataset and its protocol: SST-1's 156,817 phrases against MR's 8,636
sentences) and one per variant (CNN-static's frozen embedding against CNN-rand's 6 M trained weights):
log(seconds per epoch) = base + variant, fitted by least squares (alternating means) over every (base,
variant) cell with a complete full-profile run. A variant never run anywhere is costed as the variant its
name extends (`static_w2v` as `static`), else as its base (a stock-optimizer or hold-out variant trains the
same model); a base with no full run at all is timed by its quick run's training samples per second over the
samples the full run will see (a config that fixes `train.steps_per_epoch`), else it has no estimate. The
model's own accuracy is measured, not assumed: `leave_one_out` refits without each cell in turn and predicts it;
the dry run and the report print the median factor it was off by.

Reference: issue 18 ("what is not done stays in the report as 'not run', with its estimated cost"); the
two-factor (row + column) additive model of a two-way table, on the log scale.
Trap: the cells' runs come from whatever machines made them (two CPUs, two precisions), so an estimate is for
"these project machines", not for this one; and seconds per epoch include a run's fixed costs (data loading,
feature extraction), which a 2-epoch quick run would make look dear — only full-profile runs are cells. A run
of an experiment's *earlier* setting is no evidence either: SST-2 trained on its 6,920 sentences before the
phrase fix and on 76,961 phrases after, 7.6 times the work an epoch, so a run counts only where its own
config.yaml has today's setting digest (`same_cost`; cnnlab.report.compare.setting_digest).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cnnlab.store.results import complete_runs, read_metrics

Cell = tuple[str, str]  # (base experiment, variant or "")

# Overrides that keep a run a full-profile measurement of its cell's cost per epoch.
NEUTRAL_KEYS = ("seed", "data.options.fold", "train.precision", "train.epochs")


def cell_of(ref: str) -> Cell:
    """'kim_sst1:static_w2v' → ('kim_sst1', 'static_w2v'); 'mnist' → ('mnist', '')."""
    base, _, variant = ref.partition(":")
    return base, variant


def _seconds_per_epoch(m: dict) -> float | None:
    """A complete full-profile run's wall seconds per epoch, or None if it does not measure its cell's cost."""
    if m.get("profile") != "full" or m.get("resumed_from_epoch"):
        return None  # a resumed run's wall time covers only its last epochs
    if any(str(o).split("=", 1)[0].strip() not in NEUTRAL_KEYS for o in m.get("overrides") or []):
        return None
    seconds, epochs = (m.get("timing") or {}).get("wall_seconds"), m.get("epochs_run")
    if not isinstance(seconds, (int, float)) or not isinstance(epochs, int) or epochs < 1 or seconds <= 0:
        return None
    return float(seconds) / epochs


def observed(
    results_root: Path, refs: Mapping[str, str], same_cost: Callable[[str, Path], bool] | None = None
) -> dict[Cell, float]:
    """(base, variant) → the median seconds per epoch of its complete full-profile runs under `results_root`
    (`refs`: results name → reference, config.experiment.experiment_refs); with `same_cost` (results name, run
    folder → whether the run's own config costs what today's does), only the runs it accepts."""
    cells: dict[Cell, float] = {}
    for name, ref in refs.items():
        values = []
        for run in complete_runs(Path(results_root), name):
            try:
                v = _seconds_per_epoch(read_metrics(run))
                if v is not None and same_cost is not None and not same_cost(name, run):
                    v = None
            except Exception:  # noqa: BLE001 - a damaged run folder is no evidence of a cost
                v = None
            if v is not None:
                values.append(v)
        if values:
            cells[cell_of(ref)] = statistics.median(values)
    return cells


class Model:
    """log(seconds per epoch) = base[b] + variant[v], variant[''] = 0, fitted on observed cells."""

    def __init__(self, cells: Mapping[Cell, float], iterations: int = 50):
        logs = {c: math.log(s) for c, s in cells.items()}
        self.base: dict[str, float] = {}
        self.variant: dict[str, float] = {v: 0.0 for _, v in logs}
        for _ in range(iterations):
            by_base: dict[str, list[float]] = {}
            for (b, v), y in logs.items():
                by_base.setdefault(b, []).append(y - self.variant[v])
            self.base = {b: statistics.fmean(ys) for b, ys in by_base.items()}
            by_variant: dict[str, list[float]] = {}
            for (b, v), y in logs.items():
                by_variant.setdefault(v, []).append(y - self.base[b])
            self.variant = {v: statistics.fmean(ys) for v, ys in by_variant.items()}
            shift = self.variant.get("", 0.0)  # the base variant is the unit: a base's factor is its own cost
            self.variant = {v: g - shift for v, g in self.variant.items()}
            self.base = {b: x + shift for b, x in self.base.items()}

    def predict(self, cell: Cell) -> tuple[float | None, str]:
        """Seconds per epoch for `cell`, and how: 'modelled' (both factors fitted), 'as its base' (a variant run
        nowhere; 'as its variant static' for static_w2v when static was fitted), or (None, 'no run of its base')."""
        b, v = cell
        if b not in self.base:
            return None, "no run of its base"
        if v in self.variant:
            return math.exp(self.base[b] + self.variant[v]), "modelled"
        near = v.rsplit("_", 1)[0] if "_" in v else ""
        if near and near in self.variant:  # static_w2v: costed as static (its embedding is frozen too)
            return math.exp(self.base[b] + self.variant[near]), f"as its variant {near}"
        return math.exp(self.base[b]), "as its base"


def leave_one_out(cells: Mapping[Cell, float]) -> tuple[float | None, int]:
    """The model's median error factor (exp of the median |log predicted − log observed|) when each cell is
    predicted from the others, over the cells it can predict then; and how many those were."""
    errors = []
    for cell, seconds in cells.items():
        rest = {c: s for c, s in cells.items() if c != cell}
        predicted, how = Model(rest).predict(cell)
        if predicted is not None and how == "modelled":
            errors.append(abs(math.log(predicted / seconds)))
    return (math.exp(statistics.median(errors)) if errors else None), len(errors)


def quick_rates(results_root: Path, refs: Mapping[str, str]) -> dict[str, float]:
    """results name → the median training samples per second of its complete quick-profile runs."""
    out = {}
    for name in refs:
        rates = []
        for run in complete_runs(Path(results_root), name):
            try:
                m = read_metrics(run)
            except Exception:  # noqa: BLE001 - a damaged run folder is no evidence of a cost
                continue
            rate = (m.get("timing") or {}).get("train_samples_per_second")
            if m.get("profile") == "quick" and isinstance(rate, (int, float)) and rate > 0:
                rates.append(float(rate))
        if rates:
            out[name] = statistics.median(rates)
    return out


def samples_to_see(job) -> int | None:
    """Training samples a job's full run draws, where its config fixes them: epochs × steps × batch size."""
    train = getattr(getattr(job.experiment, "config", None), "train", None)
    steps, batch = getattr(train, "steps_per_epoch", None), getattr(train, "batch_size", None)
    return job.epochs * steps * batch if isinstance(steps, int) and isinstance(batch, int) else None


def estimates(
    jobs: Iterable, cells: Mapping[Cell, float], rates: Mapping[str, float] | None = None
) -> dict[object, tuple[float | None, str]]:
    """job → (seconds, basis) for jobs that have no earlier run of their own: the model's seconds per epoch ×
    the job's epochs (`Job.ref`, `Job.epochs`), else its (or its base's) quick run's rate over `samples_to_see`."""
    model = Model(cells)
    out = {}
    for job in jobs:
        per_epoch, how = model.predict(cell_of(job.ref))
        if per_epoch is not None:
            out[job] = (per_epoch * max(job.epochs, 1), how)
            continue
        rates = rates or {}
        rate, samples = rates.get(job.name) or rates.get(cell_of(job.ref)[0]), samples_to_see(job)
        out[job] = (samples / rate, "its quick run's samples/s") if rate and samples else (None, how)
    return out
