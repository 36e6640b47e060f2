"""The one path every experiment takes: config → data → model → fit → evaluate → results/.

Reference: keras-io examples/vision/mnist_convnet.py (the same steps as a script); lecture 002's training code.
Trap: everything a user can get wrong (model shapes, data files, loss vs label shape) is checked *before* the
results folder is created, so a mistake never leaves an empty or half-written run behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cnnlab import data as data_mod
from cnnlab import direction, stop
from cnnlab.config import keras_specs
from cnnlab.config.experiment import Ctx, Experiment, to_plain
from cnnlab.errors import CnnlabError, one_line
from cnnlab.models import params
from cnnlab.models.blocks import BLOCKS, LAYERS
from cnnlab.models.stack import build_model, needs_data
from cnnlab.paths import env_seconds
from cnnlab.report import plots
from cnnlab.store import meta
from cnnlab.store.files import cache_dir
from cnnlab.store.results import RunDir, csv_text, portable, read_history
from cnnlab.train import features, phases, precision
from cnnlab.train.backup import EpochBackup
from cnnlab.train.resume import ResumeState, set_weights_by_path, weights_by_path
from cnnlab.train.sampling import BatchStream, samples_per_epoch


class Interrupted(CnnlabError):
    """Ctrl-C during a run; the partial folder is left for inspection and never read as a result."""

    exit_code = 130


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict


class EpochLog(keras.callbacks.Callback):
    """Times every epoch and rewrites history.csv (atomically) after each one."""

    def __init__(self, run_dir: RunDir, rows: list[dict] | None = None):
        super().__init__()
        self.run_dir, self.rows, self._t0 = run_dir, list(rows or []), 0.0
        self.phase: int | None = None  # set when a run has several phases: a 'phase' column

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        # a resumed run repeats the epoch whose row was written but whose backup was not: keep the newer row
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch + 1]
        self.rows.append(
            {
                "epoch": epoch + 1,
                **({"phase": self.phase} if self.phase else {}),
                **{k: float(v) for k, v in (logs or {}).items()},
                "epoch_seconds": seconds,
            }
        )
        self.run_dir.write("history.csv", csv_text(self.rows))


class BestWeights(keras.callbacks.Callback):
    """Keeps (in memory) the weights of the epoch with the best validation value, for the test evaluation.

    Trap: Keras's EarlyStopping(restore_best_weights=True) restores only when it actually stops early.
    """

    def __init__(self, names: list[str], state: ResumeState | None = None, directions: dict | None = None):
        super().__init__()
        self.names, self.weights, self.epoch, self.best, self.monitor = names, None, None, None, None
        self.directions = directions
        self.state = state
        if state is not None:  # a resumed run continues with the best epoch found before the interruption
            saved, info = state.load_best()
            if saved is not None and info:
                self.weights, self.best, self.epoch, self.monitor = saved, info["best"], info["epoch"], info["monitor"]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        found = best_epoch({k: [v] for k, v in logs.items()}, self.names, self.directions)
        if found is None:
            return
        self.monitor, value = found["monitor"], found["value"]
        if direction.better(value, self.best, self.monitor, self.directions):  # ties: the later epoch
            self.best, self.epoch = value, epoch + 1
            self.weights = weights_by_path(self.model)
            if self.state is not None:
                self.state.save_best(self.model, {"best": value, "epoch": epoch + 1, "monitor": self.monitor})


class _StreamBatches(keras.utils.PyDataset):
    """Batch i of a phase is stream batch `start + offset + i` (cnnlab.sampling.BatchStream): a pure function of
    its index, so Keras's shape peeking, TensorFlow's prefetching and a resumed run all see the book's stream.

    Trap: a Python generator will not do — Keras peeks at its first two batches to infer shapes and serves them
    again at every new iterator (every validation pass), and TensorFlow's prefetch draws batches ahead that a
    counter would lose."""

    def __init__(self, x, y, stream, length: int, start: int):
        super().__init__()
        self.x, self.y, self.stream, self.length, self.start, self.offset = x, y, stream, length, start, 0

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        idx = self.stream.indices_of(self.start + self.offset + i)
        return self.x[idx], self.y[idx]


class StopCallback(keras.callbacks.Callback):
    """Raises a stop the signal handler recorded (cnnlab.stop) at the next batch or epoch end, where the
    handler's own raise was swallowed by Python (an exception in a `__del__` is printed and ignored)."""

    def on_train_batch_end(self, batch, logs=None):
        stop.raise_if_requested()

    on_test_batch_end = on_predict_batch_end = on_epoch_end = on_train_batch_end


class _StreamEpochs(keras.callbacks.Callback):
    """Keeps the streams on the epoch Keras is at: validation restarts at index 0 every epoch, so it is pointed at
    epoch e's batches; training continues one iterator across the phase, so it is pointed once, at the first epoch
    that actually trains (later than the phase's start when BackupAndRestore resumed it)."""

    def __init__(
        self, train: _StreamBatches, phase_start: int, steps: int, val: _StreamBatches | None, val_steps: int | None
    ):
        super().__init__()
        self.train, self.phase_start, self.steps, self.val, self.val_steps = train, phase_start, steps, val, val_steps
        self.started = False

    def on_epoch_begin(self, epoch, logs=None):
        if not self.started:
            self.train.offset = (epoch - self.phase_start) * self.steps
            self.started = True
        if self.val is not None:
            self.val.offset = epoch * self.val_steps


class FitData:
    """What `model.fit` trains and validates on: the arrays in passes of `batch_size`, or with
    `train.steps_per_epoch` Keras 2's endless reshuffled streams (cnnlab.sampling), one for training and one for
    validation, carried on across epochs, phases and resumes as the book's generators were."""

    def __init__(self, splits, tr, seed: int):
        self.splits, self.tr = splits, tr
        self.validation = (splits.x_val, splits.y_val) if splits.x_val is not None else None
        self.train_stream = self.val_stream = None
        if tr.steps_per_epoch:
            self.train_stream = BatchStream(len(splits.x_train), tr.batch_size, seed)
            if tr.validation_steps and self.validation is not None:
                self.val_stream = BatchStream(len(splits.x_val), tr.batch_size, seed + 1)

    def fit_args(self, epochs_done: int, epochs: int) -> tuple[tuple, dict, list]:
        """(positional, keyword arguments, callbacks) of model.fit for a phase of `epochs` epochs after
        `epochs_done`: batch k of the stream is the same whether the run was interrupted or not."""
        tr = self.tr
        if self.train_stream is None:
            return (
                (self.splits.x_train, self.splits.y_train),
                {"batch_size": tr.batch_size, "validation_data": self.validation},
                [],
            )
        train = _StreamBatches(
            self.splits.x_train,
            self.splits.y_train,
            self.train_stream,
            tr.steps_per_epoch * epochs,
            epochs_done * tr.steps_per_epoch,
        )
        kwargs = {"steps_per_epoch": tr.steps_per_epoch, "shuffle": False}  # the stream shuffles itself
        val = None
        if self.val_stream is not None:
            val = _StreamBatches(*self.validation, self.val_stream, tr.validation_steps, 0)
            val.offset = epochs_done * tr.validation_steps
            kwargs.update(validation_data=val, validation_steps=tr.validation_steps)
        else:
            kwargs.update(validation_data=self.validation, validation_batch_size=tr.batch_size)
        return (train,), kwargs, [_StreamEpochs(train, epochs_done, tr.steps_per_epoch, val, tr.validation_steps)]

    def train_samples(self, epochs: int) -> int:
        """Training samples seen in `epochs` epochs."""
        if self.train_stream is None:
            return len(self.splits.x_train) * epochs
        return samples_per_epoch(len(self.splits.x_train), self.tr.batch_size, self.tr.steps_per_epoch * epochs)


BACKUP_SECONDS = 30.0  # at most one backup per 30 s of training: a kill loses at most that much work


def backup_seconds() -> float:
    """Seconds between backups: $CNNLAB_BACKUP_SECONDS (0: after every epoch), else BACKUP_SECONDS."""
    return env_seconds("CNNLAB_BACKUP_SECONDS", BACKUP_SECONDS)


def set_determinism(on: bool) -> str:
    """Switch the backend's deterministic kernels on (or say why not); returns what was done, for metrics.json.

    Trap: JAX on GPU reads its switch (XLA_FLAGS=--xla_gpu_deterministic_ops=true) only at start-up, and
    TensorFlow's cannot be switched off again in the same process.
    """
    backend = keras.backend.backend()
    if not on:
        if backend == "tensorflow":
            # not in TensorFlow's public API (tf.config.experimental has only the enable_ switch): where Keras's
            # own model_supports_jit reads it
            from tensorflow.python.framework.config import is_op_determinism_enabled

            if is_op_determinism_enabled():
                return "on: left on by an earlier run in this process (TensorFlow cannot switch it off)"
        return "off"
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        return "tf.config.experimental.enable_op_determinism()"
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
        return "torch.use_deterministic_algorithms(True)"
    if backend == "jax":
        flag = "--xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", "")
        return (
            "XLA_FLAGS --xla_gpu_deterministic_ops=true"
            if flag
            else "jax: deterministic on CPU; on GPU set XLA_FLAGS=--xla_gpu_deterministic_ops=true before start-up"
        )
    return f"no switch known for backend {backend}"


def nan_epoch(rows: list[dict]) -> int | None:
    """The first epoch whose training loss is NaN or infinite (TerminateOnNaN stops there), else None."""

    return next((int(r["epoch"]) for r in rows if not math.isfinite(float(r.get("loss", 0.0)))), None)


def best_epoch(history: dict[str, list[float]], names: list[str], directions: dict | None = None) -> dict | None:
    """The epoch with the best validation value of the first metric, or of the loss if none; best in the
    metric's own direction (cnnlab.direction), the first such epoch."""
    monitor = next((f"val_{n}" for n in names[1:] if f"val_{n}" in history), "val_loss")
    if monitor not in history:
        return None
    values = history[monitor]
    idx = int(np.argmin(values) if direction.minimised(monitor, directions) else np.argmax(values))
    return {"monitor": monitor, "epoch": idx + 1, "value": float(values[idx])}


def measured_metrics(
    history: dict[str, list[float]],
    test: dict[str, float],
    names: list[str],
    param_summary: dict,
    directions: dict | None = None,
) -> dict:
    """The flat metric dict references are compared with: test_*, val_* (best), train_* (last), params_*."""
    out: dict[str, float] = {f"test_{k}": float(v) for k, v in test.items()}
    for name in names:
        if f"val_{name}" in history:
            series = history[f"val_{name}"]
            out[f"val_{name}"] = float(min(series) if direction.minimised(name, directions) else max(series))
        if name in history:
            out[f"train_{name}"] = float(history[name][-1])
    out.update(param_summary)
    return out


def metric_directions(model, tr) -> dict[str, str]:
    """{'loss': 'down', 'accuracy': 'up', 'mae': 'down', ...}: each compiled metric's own `_direction` (Keras's
    convention; the metric objects exist once the probe has run), else its name's, then train.directions."""
    objects, todo = {}, list(getattr(model, "metrics", []))
    while todo:
        m = todo.pop(0)
        inner = getattr(m, "metrics", None)
        if isinstance(inner, (list, tuple)):  # Keras's CompileMetrics / MetricsList containers
            todo.extend(inner)
        objects.setdefault(getattr(m, "name", None), m)
    names = tr.metric_names()
    found = {"loss": direction.DOWN, **{n: direction.of_metric(objects.get(n), n) for n in names[1:]}}
    return {**found, **dict(tr.directions)}


def set_monitor_modes(callbacks, directions: dict[str, str]) -> None:
    """EarlyStopping, ModelCheckpoint, ReduceLROnPlateau left at mode='auto' follow the run's `directions`, so
    they agree with the best epoch and the report (Keras decides 'auto' only at the first epoch's end)."""
    for cb in callbacks:
        if getattr(cb, "mode", None) == "auto" and isinstance(getattr(cb, "monitor", None), str):
            cb.mode = direction.mode(cb.monitor, directions)


def compile_model(model, tr, ctx: Ctx, optimizer=None, optimizer_path: str = "train.optimizer") -> None:
    """Compile with a fresh optimizer (train.optimizer unless a phase names its own), the loss and metrics."""
    model.compile(
        optimizer=keras_specs.make("optimizer", optimizer or tr.optimizer, ctx, optimizer_path),
        loss=keras_specs.make("loss", tr.loss, ctx, "train.loss"),
        metrics=[keras_specs.make("metric", m, ctx, f"train.metrics[{i}]") for i, m in enumerate(tr.metrics)],
    )


def compile_and_probe(model, tr, splits, ctx: Ctx) -> float:
    """Compile, then evaluate one batch so that a loss that does not fit the labels is a config error before
    any results folder exists; returns the probe's seconds."""
    compile_model(model, tr, ctx)
    n_probe = min(tr.batch_size, len(splits.x_train))
    t_probe = time.perf_counter()
    try:
        model.evaluate(splits.x_train[:n_probe], splits.y_train[:n_probe], verbose=0)
    except Exception as exc:
        ctx.error(
            "train.loss",
            f"cannot be computed on this data (labels of shape {list(splits.y_train.shape[1:])}, "
            f"model output {list(model.output_shape[1:])}): {one_line(exc)}",
        )
    return time.perf_counter() - t_probe


@contextlib.contextmanager
def distribution_scope(kind: str | None, ctx: Ctx):
    """Everything built and trained inside runs data-parallel over the local devices (`train.distribution`).

    Reference: keras.io/guides/distribution (keras.distribution.DataParallel); tf.distribute.MirroredStrategy.
    Trap: MirroredStrategy takes only GPUs by default; without one it is given the (virtual) CPU devices, so the
    same config is testable on a CPU split into logical devices.
    """
    if kind is None:
        yield None
        return

    backend = keras.backend.backend()
    if backend == "jax":
        if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):  # several machines: one process each (README)
            keras.distribution.initialize()  # reads KERAS_DISTRIBUTION_{JOB_ADDRESSES,NUM_PROCESSES,PROCESS_ID}
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield f"keras.distribution.DataParallel over {len(devices)} devices ({', '.join(devices)})"
        finally:
            keras.distribution.set_distribution(None)
    elif backend == "tensorflow":
        import tensorflow as tf

        if os.environ.get("TF_CONFIG"):  # several machines: TF_CONFIG names the cluster and this worker (README)
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            names = ["TF_CONFIG cluster"]
        else:
            names = [d.name for d in tf.config.list_logical_devices("GPU")] or [
                d.name for d in tf.config.list_logical_devices("CPU")
            ]
            strategy = tf.distribute.MirroredStrategy(devices=names)
        with strategy.scope():
            yield (
                f"tf.distribute.{type(strategy).__name__} over {strategy.num_replicas_in_sync} replicas "
                f"({', '.join(names)})"
            )
    else:
        ctx.error(
            "train.distribution",
            f"data_parallel runs through Keras's distribution API (JAX) or "
            f"tf.distribute (TensorFlow); this run uses KERAS_BACKEND={backend}",
        )


def run(
    exp: Experiment, results_root: Path, data_dir: str | None = None, verbose: int | None = None, log=print
) -> RunResult:
    """Train and evaluate one experiment and write its results folder: the steps below, in this order (the
    seeds make the order part of the result: the model is built before the data are split, as always)."""
    with distribution_scope(exp.config.train.distribution, Ctx(str(exp.path))) as distribution:
        r = _Run(exp, Path(results_root), log, distribution)
        _set_up_backend(r)
        _build_model_and_load_data(r, data_dir)
        _compile(r)
        _open_run_folder(r)
        _announce(r, verbose)
        try:
            _fit_phases(r)
            _evaluate(r)
        except KeyboardInterrupt:
            stop.clear()
            raise Interrupted(
                f"interrupted after {len(r.epoch_log.rows)} epochs; the partial run in {r.run_dir.partial} is "
                "never read as a result: the same command continues it"
            ) from None
        return _write_results(r)


@dataclass
class _Run:
    """What the steps of one run hand on to the next: set by each step, read by the later ones."""

    exp: Experiment
    results_root: Path
    log: Callable[[str], None]
    distribution: str | None
    t_start: float = field(default_factory=time.perf_counter)
    timing: dict = field(default_factory=dict)  # data, probe, fit, evaluate seconds
    phase_records: list = field(default_factory=list)
    started: str = ""
    environment: dict | None = None
    determinism: str = ""
    precision: precision.Resolved | None = None
    data_dir: Path | None = None
    model: object = None
    splits: data_mod.Splits | None = None
    table: params.Table | None = None
    augmenters: list = field(default_factory=list)
    directions: dict = field(default_factory=dict)
    callbacks: list = field(default_factory=list)
    state: ResumeState | None = None
    run_dir: RunDir | None = None
    epoch_log: EpochLog | None = None
    best_weights: BestWeights | None = None
    resumed_from: int = 0
    streams: FitData | None = None
    verbose: int = 2
    test: dict | None = None

    @property
    def cfg(self):
        return self.exp.config

    @property
    def ctx(self) -> Ctx:
        return Ctx(str(self.exp.path))


def _set_up_backend(r: _Run) -> None:
    """The process-wide state a run sets afresh: seeds, determinism, the dtype policy; the record of the code and
    machine taken now, at the start (the commit of the code that runs, not of a later checkout)."""
    r.started, r.environment = meta.utc_now(), meta.environment()
    keras.utils.set_random_seed(r.cfg.seed)
    r.determinism = set_determinism(r.cfg.train.deterministic)
    r.precision = precision.resolve(r.cfg.train.precision)
    keras.config.set_dtype_policy(r.precision.policy)  # reset by every run (global state)


def _build_model_and_load_data(r: _Run, data_dir: str | None) -> None:
    """The model and the data, each checked against the other. A model whose builder needs the data (vocabulary,
    pretrained vectors) is built after them; any other model first, so that a mistake in it is reported before a
    slow data step."""
    cfg, ctx = r.cfg, r.ctx
    r.data_dir = data_mod.resolve_data_dir(data_dir, cfg.data.data_dir, r.exp.path)
    if not needs_data(cfg.model):
        r.model = build_model(cfg.model, cfg.name, ctx, weights_dir=r.data_dir, load_weights=True)
    t_data = time.perf_counter()
    r.splits = data_mod.load(cfg.data, r.data_dir, cfg.seed)
    if cfg.data.features is not None:
        r.splits, _ = features.extract(r.splits, cfg.data.features, ctx, r.data_dir, log=r.log)
    r.timing["data_seconds"] = time.perf_counter() - t_data
    if r.model is None:
        r.model = build_model(cfg.model, cfg.name, ctx, weights_dir=r.data_dir, load_weights=True, data=r.splits.extras)
    phases.check(r.model, cfg.train.phases, ctx)
    r.table = params.table(r.model, cfg.report.dense_head_what_if)
    r.augmenters = [layer for layer in r.model.layers if type(layer).__name__.startswith("Random")]
    if cfg.report.augmentation_grid and not r.augmenters:
        ctx.error("report.augmentation_grid", "the model has no Random* preprocessing layers to show")
    sample_shape = tuple(r.splits.x_train.shape[1:])
    if sample_shape != tuple(cfg.model.input_shape):
        ctx.error(
            "model.input_shape",
            f"{list(cfg.model.input_shape)} does not match the shape of one "
            f"'{cfg.data.dataset}' sample, {list(sample_shape)} (see data.options and data.features)",
        )


def _compile(r: _Run) -> None:
    """Compile, probe one batch (loss against labels), and make the config's callbacks with their directions."""
    tr, ctx = r.cfg.train, r.ctx
    r.timing["probe_seconds"] = compile_and_probe(r.model, tr, r.splits, ctx)
    r.directions = metric_directions(r.model, tr)
    r.callbacks = [keras_specs.make("callback", c, ctx, f"train.callbacks[{i}]") for i, c in enumerate(tr.callbacks)]
    set_monitor_modes(r.callbacks, r.directions)


def _open_run_folder(r: _Run) -> None:
    """The .partial run folder with the files known before training; an interrupted run of the same settings
    (same config hash) is continued in its own folder, from its history."""
    cfg, tr = r.cfg, r.cfg.train
    r.state = ResumeState(cfg.name, r.exp.config_hash())
    previous = r.state.partial_run_id()
    r.run_dir = RunDir.reopen(r.results_root, cfg.name, previous) if previous else None
    rows = read_history(r.run_dir.path("history.csv")) if r.run_dir else []
    if r.run_dir is None:
        r.state.clear()
        r.run_dir = RunDir(r.results_root, cfg.name, r.exp.profile)
        r.state.start(r.run_dir.run_id)
    r.run_dir.write("config.yaml", r.exp.resolved_yaml())
    r.run_dir.write("params.csv", csv_text(params.to_records(r.table)))
    r.run_dir.write("params.md", params.to_markdown(r.table, f"{cfg.name}: parameters"))
    if cfg.report.augmentation_grid:
        r.run_dir.write("augmentation.png", augmentation_grid(r.augmenters, r.splits.x_train[0]))
    r.epoch_log = EpochLog(r.run_dir, rows)
    r.best_weights = BestWeights(tr.metric_names(), r.state, r.directions) if tr.restore_best else None
    r.resumed_from = len(rows)
    r.streams = FitData(r.splits, tr, cfg.seed)


def _announce(r: _Run, verbose: int | None) -> None:
    """The run's header: data, model size, backend, device, precision, folder."""
    cfg, p = r.cfg, r.precision
    r.verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    r.log(
        f"{cfg.name}: {cfg.description}\n  data: {r.splits.source}; train/val/test = "
        f"{'/'.join(str(v) for v in r.splits.sizes().values())}\n  model: {r.table.total:,} parameters; "
        f"backend {keras.backend.backend()}; {meta.device()}; precision {p.policy}"
        f"{'' if p.requested != 'auto' else f' (auto: {p.reason})'}"
        f"\n  run folder: {r.run_dir.partial}"
    )
    if r.resumed_from:
        r.log(f"  resuming an interrupted run: {r.resumed_from} epochs were done")


def _fit_phases(r: _Run) -> None:
    """Every training phase in turn (one without train.phases); a phase finished before an interruption is
    skipped and its weights restored; NaN stops the run; the best validation weights are restored at the end."""
    tr, phase_list = r.cfg.train, r.cfg.train.all_phases()
    done, finished = 0, None  # epochs so far; the last phase finished before an interruption
    t_fit = time.perf_counter()
    for i, phase in enumerate(phase_list):
        if i > 0:  # new trainable layers: recompile with the phase's optimizer, continue the epoch count
            phases.apply(r.model, phase)
            compile_model(r.model, tr, r.ctx, phase.optimizer, f"train.phases[{i - 1}].optimizer")
        if len(phase_list) > 1:
            _record_phase(r, i, phase, done)
        if r.state.phase_done(i):  # finished before the interruption
            finished = i
            done = sum(1 for row in r.epoch_log.rows if int(row.get("phase", 1)) <= i + 1)
            continue
        if finished is not None:
            r.state.restore_phase(finished, r.model)
            finished = None
        _fit_one_phase(r, i, done, phase.epochs)
        if nan_epoch(r.epoch_log.rows):
            break  # TerminateOnNaN stopped it: no later phase, results say so
        r.state.finish_phase(i, r.model)
        done += phase.epochs
        if len(r.epoch_log.rows) < done:  # a callback (EarlyStopping) ended the phase early
            done = len(r.epoch_log.rows)
    if finished is not None:
        r.state.restore_phase(finished, r.model)
    r.timing["fit_seconds"] = time.perf_counter() - t_fit
    if r.best_weights is not None and r.best_weights.weights is not None:
        set_weights_by_path(r.model, r.best_weights.weights)  # test at the best validation epoch (Kim 2014 §3.1)


def _record_phase(r: _Run, i: int, phase, done: int) -> None:
    """A multi-phase run's record of phase i (its trainable parameters after freezing) and its log line."""
    r.epoch_log.phase = i + 1
    t = params.table(r.model)
    r.phase_records.append(
        {
            "phase": i + 1,
            "name": phase.name,
            "first_epoch": done + 1,
            "epochs": phase.epochs,
            "params_trainable": t.trainable,
            "params_non_trainable": t.non_trainable,
            "optimizer": to_plain(phase.optimizer or r.cfg.train.optimizer),
        }
    )
    r.log(f"  {phase.name}: epochs {done + 1}-{done + phase.epochs}, {t.trainable:,} trainable parameters")


def _fit_one_phase(r: _Run, i: int, done: int, epochs: int) -> None:
    """model.fit for one phase, from epoch `done`, with cnnlab's callbacks around the config's."""
    r.model._initial_epoch = None  # Keras keeps a restored epoch on the model; each phase sets its own
    # weights, optimizer state and epoch at an epoch's end (every BACKUP_SECONDS at most), each backup whole or
    # absent and the one before it kept (cnnlab.backup): a kill during a write falls back to it
    backup = EpochBackup(r.state.phase_dir(i), backup_seconds())
    fit_args, fit_kwargs, stream_callbacks = r.streams.fit_args(done, epochs)
    r.model.fit(
        *fit_args,
        **fit_kwargs,
        initial_epoch=done,
        epochs=done + epochs,
        callbacks=[
            *stream_callbacks,
            r.epoch_log,
            *([r.best_weights] if r.best_weights else []),
            *r.callbacks,
            backup,
            keras.callbacks.TerminateOnNaN(),
            StopCallback(),
        ],
        verbose=r.verbose,
    )


def _evaluate(r: _Run) -> None:
    t_eval = time.perf_counter()
    r.test = r.model.evaluate(
        r.splits.x_test, r.splits.y_test, batch_size=r.cfg.train.batch_size, verbose=0, return_dict=True
    )
    r.timing["evaluate_seconds"] = time.perf_counter() - t_eval


def _write_results(r: _Run) -> RunResult:
    """The trained model (cache), curves.png, the phases' table, metrics.json; then the folder is renamed
    complete and the resume state cleared."""
    cfg = r.cfg
    model_file = save_model(r.model, cfg.name, r.run_dir.run_id)
    rows = r.epoch_log.rows
    history = {k: [row[k] for row in rows] for k in rows[0]} if rows else {}
    boundaries = [p["first_epoch"] - 1 for p in r.phase_records[1:]]
    title = f"{cfg.name} ({r.exp.profile} profile)"
    r.run_dir.write("curves.png", plots.curves(history, title, boundaries, [to_plain(x) for x in cfg.reference]))
    if r.phase_records:
        r.run_dir.write(
            "params.md",
            params.to_markdown(r.table, f"{cfg.name}: parameters") + "\n" + params.phases_markdown(r.phase_records),
        )
    metrics = _metrics(r, history, model_file)
    metrics = portable(metrics, {"data dir": r.data_dir, "cache": cache_dir(), "results": r.results_root})
    r.run_dir.write_json("metrics.json", metrics)
    final = r.run_dir.finish()
    r.state.clear()
    r.log(f"results: {final}")
    return RunResult(final, metrics)


def _metrics(r: _Run, history: dict, model_file: Path | None) -> dict:
    """metrics.json: what ran (settings, code, machine), what it measured, how long each part took."""
    cfg, tr, bw = r.cfg, r.cfg.train, r.best_weights
    stopped_at = nan_epoch(r.epoch_log.rows)
    names, epochs_run = tr.metric_names(), len(r.epoch_log.rows)
    return {
        "experiment": cfg.name,
        "description": cfg.description,
        "run_id": r.run_dir.run_id,
        "status": "nan_loss" if stopped_at else "complete",
        "status_detail": f"training stopped: the loss became NaN/inf at epoch {stopped_at}" if stopped_at else None,
        "profile": r.exp.profile,
        "overrides": list(r.exp.overrides),
        "config_hash": r.exp.config_hash(),
        # what repeats the same setting (seeds, cross-validation folds): compare averages over these
        "repeat": {"seed": cfg.seed, "fold": getattr(cfg.data.options, "fold", None)},
        "resumed_from_epoch": r.resumed_from or None,
        "determinism": r.determinism,
        "distribution": r.distribution,
        "dtype_policy": keras.config.dtype_policy().name,
        "precision": r.precision.record(),
        "started_at": r.started,
        "finished_at": meta.utc_now(),
        "measured": measured_metrics(history, r.test, names, params.summary(r.table), r.directions),
        "best_val": best_epoch(history, names, r.directions),
        "directions": r.directions,  # which way each metric improves (cnnlab.direction): the report reads these
        "test_weights": f"best validation epoch ({bw.monitor} = {bw.best:.4f} at epoch {bw.epoch})"
        if bw and bw.weights is not None
        else "last epoch",
        "epochs_run": epochs_run,
        "timing": _timing(r, history, epochs_run),
        "data": {
            "dataset": cfg.data.dataset,
            "source": r.splits.source,
            **{f"n_{k}": v for k, v in r.splits.sizes().items()},
            "fingerprint": r.splits.fingerprint,
        },  # of the data as loaded: reproduce's skip key
        "seed": cfg.seed,
        "batch_size": tr.batch_size,
        "train_samples_seen": r.streams.train_samples(epochs_run),  # steps_per_epoch: the streams' count
        "references": to_plain(cfg.reference),
        "environment": r.environment,
        "code": meta.code_files(),  # the source files this run executed: reproduce's skip key (meta.code_files)
        "phases": r.phase_records,
        "model_file": str(model_file) if model_file else None,
        "pretrained": pretrained(cfg),
    }


def _timing(r: _Run, history: dict, epochs_run: int) -> dict:
    fit = r.timing["fit_seconds"]
    return {
        "wall_seconds": time.perf_counter() - r.t_start,
        "data_seconds": r.timing["data_seconds"],
        "probe_seconds": r.timing["probe_seconds"],  # one evaluate() batch: checks loss vs labels, traces the step
        "fit_seconds": fit,
        "evaluate_seconds": r.timing["evaluate_seconds"],
        "epoch_seconds": history.get("epoch_seconds", []),
        "mean_epoch_seconds": float(np.mean(history["epoch_seconds"])) if epochs_run else None,
        "train_samples_per_second": r.streams.train_samples(epochs_run) / fit if fit else None,
    }


def augmentation_grid(augmenters, image: np.ndarray, n: int = 8) -> bytes:
    """PNG: one training image and `n` random variants from the model's Random* layers (DLwP figure 5.11)."""
    x = np.repeat(image[None].astype("float32"), n, axis=0)
    for layer in augmenters:
        x = layer(x, training=True)
    variants = keras.ops.convert_to_numpy(x)
    scale = 255.0 if image.dtype == np.uint8 or image.max() > 1.5 else 1.0
    images = np.concatenate([image[None].astype("float32"), variants]) / scale
    return plots.tiles(
        images, f"original (0) and {n} augmented variants", cols=3 if n == 8 else 8, normalise_each=False
    )


def pretrained(cfg) -> list[dict]:
    """Which pretrained blocks and ImageNet preprocessing a run used, from data.features and the model: registered
    layers only where they declare PRETRAINED_INPUT (the augmentation layer RandomAffine is registered too)."""
    out = []
    for where, specs in (("data.features", cfg.data.features or ()), ("model.layers", cfg.model.layers or ())):
        out += [
            {"where": where, "block": s.name, **to_plain(dict(s.kwargs))}
            for s in specs
            if s.name in BLOCKS or getattr(LAYERS.get(s.name), "PRETRAINED_INPUT", False)
        ]
    return out


def save_model(model, experiment: str, run_id: str) -> Path | None:
    """The trained model as .cache/models/<experiment>/<run id>.keras, for `cnnlab explain`; None if unwritable."""
    path = cache_dir("models", experiment, f"{run_id}.keras")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.keras")
        model.save(tmp)
        tmp.replace(path)
    except OSError as exc:
        print(
            f"cnnlab: warning: the trained model was not saved ({exc.strerror or exc}); `cnnlab explain` "
            "will not find it",
            file=sys.stderr,
        )
        return None
    return path.resolve()
