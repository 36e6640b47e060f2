"""Experiment configs: YAML → validated, frozen dataclasses.

Reference: nanoGPT's configurator (unknown keys refused) and big_vision's configs (a smoke-test variant of
every config, here the `quick` profile).
Trap: the `quick` profile and CLI `key=value` overrides are applied to the raw mapping *before* validation,
so they pass through exactly the same checks as the file itself, and an error in one names the override.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cnnlab.config import keras_specs
from cnnlab.config.schema import (
    _KERAS_CHECKS,
    ClassSpec,
    Ctx,
    describe,
    from_mapping,
    join,
    keras_checks,
    to_plain,
)
from cnnlab.errors import ConfigError, suggest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # cnnlab/
PROFILES = ("full", "quick")


def configs_dir() -> Path:
    """Where experiment names resolve: $CNNLAB_CONFIGS_DIR, else the repository's configs/."""
    env = os.environ.get("CNNLAB_CONFIGS_DIR")
    if env:
        return Path(env)
    repo = PACKAGE_ROOT.parent / "configs"
    return repo if repo.is_dir() else Path.cwd() / "configs"


# --------------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how it is split."""

    dataset: str
    data_dir: str | None = None
    validation_split: float = 0.0
    # 'test': the test set doubles as the validation data, for the curves only (DLwP notebook 4.4's
    # validation_data=(x_test, y_test)); the model is never selected on it (restore_best is refused)
    validation: Literal["split", "test"] = "split"
    train_subset: int | None = None
    val_subset: int | None = None
    test_subset: int | None = None
    options: Any = field(default_factory=dict)
    features: tuple[ClassSpec, ...] | None = None  # a frozen stack run once over every split (cached)

    def check(self, ctx: Ctx, path: str) -> None:
        from cnnlab.data import DATASETS  # numpy (the datasets' modules)

        dataset = DATASETS.lookup(self.dataset, ctx, join(path, "dataset"))
        if not 0.0 <= self.validation_split < 1.0:
            ctx.error(
                join(path, "validation_split"), f"expected a fraction in [0, 1), received {self.validation_split}"
            )
        own_val = dataset.has_validation
        if self.validation == "test" and (self.validation_split or own_val):
            ctx.error(
                join(path, "validation"),
                "'test' validates on the test set, so there must be no other "
                f"validation data: set validation_split to 0 (received {self.validation_split})"
                + (f"; '{self.dataset}' has its own validation split" if own_val else ""),
            )
        if own_val and self.validation_split:
            ctx.error(
                join(path, "validation_split"),
                f"'{self.dataset}' has its own validation split; leave "
                f"validation_split at 0 (received {self.validation_split}) and use val_subset to shrink it",
            )
        if not own_val and self.val_subset is not None:
            ctx.error(
                join(path, "val_subset"), f"'{self.dataset}' has no validation split of its own; use validation_split"
            )
        for key in ("train_subset", "val_subset", "test_subset"):
            n = getattr(self, key)
            if n is not None and n < 1:
                ctx.error(join(path, key), f"expected a positive number of samples or null, received {n}")
        if self.features is not None:
            if not self.features:
                ctx.error(join(path, "features"), "the stack is empty")
            for i, spec in enumerate(self.features if keras_checks() else ()):
                keras_specs.check("layer", spec, ctx, join(join(path, "features"), i))
        options_cls = dataset.options
        opts = (
            self.options
            if dataclasses.is_dataclass(self.options)
            else from_mapping(options_cls, dict(self.options), ctx, join(path, "options"))
        )
        # a dataset's cross-field rules (Options.problems(dataset): one Options class may serve several sets)
        for key, message in opts.problems(self.dataset) if hasattr(opts, "problems") else ():
            ctx.error(join(join(path, "options"), key), message)
        object.__setattr__(self, "options", opts)  # frozen: set once, while being built


@dataclass(frozen=True)
class ModelConfig:
    """A declarative stack of Keras layers after an input shape, or a named builder with keyword parameters."""

    input_shape: tuple[int, ...]
    layers: tuple[ClassSpec, ...] | None = None
    builder: str | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))

    def check(self, ctx: Ctx, path: str) -> None:
        from cnnlab.models.stack import MODELS  # numpy (the builders' names and signatures; no Keras)

        if any(d < 1 for d in self.input_shape):
            ctx.error(join(path, "input_shape"), f"dimensions must be positive, received {list(self.input_shape)}")
        if (self.layers is None) == (self.builder is None):
            ctx.error(path, "give exactly one of 'layers' (a stack of Keras layers) or 'builder' (a named builder)")
        if self.layers is not None:
            if self.params:
                ctx.error(join(path, "params"), "'params' belongs to a builder; a layer stack takes none")
            if not self.layers:
                ctx.error(join(path, "layers"), "the stack is empty")
            for i, spec in enumerate(self.layers if keras_checks() else ()):
                keras_specs.check("layer", spec, ctx, join(join(path, "layers"), i))
        else:
            builder = MODELS.lookup(self.builder, ctx, join(path, "builder"))
            keras_specs.check_builder_params(builder, self.params, ctx, join(path, "params"))


@dataclass(frozen=True)
class Phase:
    """A later training phase: which layers (un)freeze, its optimizer, and how many more epochs."""

    name: str
    epochs: int
    optimizer: ClassSpec | None = None  # default: train.optimizer, freshly built
    unfreeze: tuple[str, ...] = ()  # layer names, also inside a nested base (block5_conv1, ...)
    freeze: tuple[str, ...] = ()

    def check(self, ctx: Ctx, path: str) -> None:
        if self.epochs < 1:
            ctx.error(join(path, "epochs"), f"expected a positive integer, received {self.epochs}")
        if self.optimizer is not None and keras_checks():
            keras_specs.check("optimizer", self.optimizer, ctx, join(path, "optimizer"))
        both = set(self.unfreeze) & set(self.freeze)
        if both:
            ctx.error(path, f"layers both frozen and unfrozen: {', '.join(sorted(both))}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, loss, metrics, epochs, batch size and callbacks, as `model.compile` / `model.fit` take them;
    `phases` continue training after the first `epochs` with other layers trainable (fine-tuning)."""

    optimizer: ClassSpec
    loss: ClassSpec
    epochs: int
    batch_size: int
    metrics: tuple[ClassSpec, ...] = ()
    callbacks: tuple[ClassSpec, ...] = ()
    phases: tuple[Phase, ...] = ()
    # Evaluate the test split with the weights of the best validation epoch instead of the last one
    # (Kim 2014: "test accuracy at the best dev epoch"); needs validation data.
    restore_best: bool = False
    # Keras 2's fit_generator(steps_per_epoch=S, validation_steps=V): an epoch is S batches of an endless,
    # reshuffled stream over the training set (cnnlab.sampling), validation V batches of another; null: one pass
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    # The backend's determinism switch on top of the seed (TensorFlow: enable_op_determinism; torch:
    # use_deterministic_algorithms); on CPU a run is then repeatable bit for bit.
    deterministic: bool = True
    # Keras's global dtype policy while the model is built and trained (cnnlab.precision): float32, or float32
    # weights with bfloat16/float16 compute; auto: bfloat16 where the machine computes it natively, else float32
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    # the earlier name of a mixed `precision`, still read (config.yaml files of earlier runs)
    mixed_precision: Literal["mixed_float16", "mixed_bfloat16"] | None = None
    # Data-parallel training on every local accelerator (or virtual CPU device) through the backend's own API:
    # keras.distribution.DataParallel on JAX, tf.distribute.MirroredStrategy on TensorFlow; batch_size is global.
    distribution: Literal["data_parallel"] | None = None
    # which way a metric improves, where its Keras object and name do not say it (cnnlab.direction):
    # {my_metric: down}; used by the best epoch, restore_best, EarlyStopping's auto mode and the report
    directions: Mapping[str, Literal["up", "down"]] = field(default_factory=lambda: types.MappingProxyType({}))

    def all_phases(self) -> list[Phase]:
        """The first phase (train.epochs with train.optimizer, layers as built) followed by `phases`."""
        return [Phase("phase 1", self.epochs, self.optimizer)] + list(self.phases)

    def check(self, ctx: Ctx, path: str) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                ctx.error(join(path, key), f"expected a positive integer, received {getattr(self, key)}")
        for key in ("steps_per_epoch", "validation_steps"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                ctx.error(
                    join(path, key), f"expected a positive number of batches or null, received {getattr(self, key)}"
                )
        if self.mixed_precision is not None:
            if self.precision not in ("float32", self.mixed_precision):
                ctx.error(
                    join(path, "mixed_precision"),
                    f"contradicts precision: {self.precision}; give precision "
                    f"only (received mixed_precision: {self.mixed_precision})",
                )
            object.__setattr__(self, "precision", self.mixed_precision)  # frozen: set once, while being built
        if self.validation_steps is not None and self.steps_per_epoch is None:
            ctx.error(join(path, "validation_steps"), "belongs to a generator's epoch: set steps_per_epoch too")
        if not keras_checks():
            return  # the rest names Keras classes and the metrics Keras logs: the second layer
        keras_specs.check("optimizer", self.optimizer, ctx, join(path, "optimizer"))
        keras_specs.check("loss", self.loss, ctx, join(path, "loss"))
        for i, spec in enumerate(self.metrics):
            keras_specs.check("metric", spec, ctx, join(join(path, "metrics"), i))
        for i, spec in enumerate(self.callbacks):
            keras_specs.check("callback", spec, ctx, join(join(path, "callbacks"), i))
        names = self.metric_names()
        logged = names + [f"val_{n}" for n in names]
        for i, spec in enumerate(self.callbacks):
            monitor = spec.kwargs.get("monitor")
            if monitor is not None and monitor not in logged:  # Keras warns once per epoch and does nothing
                ctx.error(
                    join(join(join(path, "callbacks"), i), f"{spec.name}.monitor"),
                    f"{monitor!r} is not a metric this run logs{suggest(str(monitor), logged)}; "
                    f"its metrics: {', '.join(logged)}",
                )
        for key in self.directions:
            if key not in names:
                ctx.error(
                    join(join(path, "directions"), key),
                    f"not a metric of this run{suggest(key, names)}; its metrics: {', '.join(names)}",
                )

    def metric_names(self) -> list[str]:
        """The names Keras logs for the loss and each compiled metric ('loss', 'accuracy', ...)."""
        return ["loss"] + [keras_specs.metric_name(m) for m in self.metrics]


PARAM_METRICS = ("params_total", "params_trainable", "params_non_trainable", "params_conv_base")
_METRIC_RE = re.compile(r"^(test|val|train)_(.+)$")


@dataclass(frozen=True)
class Spread:
    """Where a reference's accepted range comes from when it is not an exact count: the test set's binomial
    standard error, the reference's own standard deviation over trials, and other faithful measurements.

    The range is [min(value, *include) − 1.96·σ, max(value, *include) + 1.96·σ] with σ = `std`, else
    sqrt(p(1 − p)/`binomial`) at p = the reference value: a 95% band around every faithful number.
    """

    source: str  # what the spread is, e.g. "binomial 95%, 500 TREC test questions"
    binomial: int | None = None  # samples behind an accuracy (the test or validation set's size)
    std: float | None = None  # the reference's own standard deviation over trials
    include: tuple[float, ...] = ()  # faithful reimplementations' values the range must hold (harvardnlp's)

    def check(self, ctx: Ctx, path: str) -> None:
        if (self.binomial is None) == (self.std is None):
            ctx.error(path, "give exactly one of 'binomial' (a sample count) or 'std' (the reference's own spread)")
        if self.binomial is not None and self.binomial < 1:
            ctx.error(join(path, "binomial"), f"expected a positive sample count, received {self.binomial}")
        if self.std is not None and self.std < 0:
            ctx.error(join(path, "std"), f"expected a standard deviation >= 0, received {self.std}")

    def band(self, value: float) -> tuple[float, float]:

        if self.std is not None:
            sigma = self.std
        else:
            p = min(max(value, 0.0), 1.0)
            sigma = math.sqrt(p * (1.0 - p) / self.binomial)
        values = (value, *self.include)
        return (min(values) - 1.96 * sigma, max(values) + 1.96 * sigma)


# How a validation or training metric's history becomes one number, as the reference measured it.
STATISTICS = ("best", "last", "mean_last_10")


@dataclass(frozen=True)
class Reference:
    """A published number: which measured metric it is compared with and by which statistic, its value, the
    accepted range (given, or derived from a stated `spread`), its source, and any declared substitution.

    `statistic` (val_/train_ metrics only): 'best' (max, or min for a loss, over epochs; val_'s default),
    'last' (the last epoch; train_'s default) or 'mean_last_10' (the mean of the last 10 epochs' values).
    `substitution` names what cnnlab runs in place of the reference's own data, weights or vectors, so a
    verdict below it reads "below — expected: substitution ...".
    """

    metric: str
    value: float
    source: str
    range: tuple[float, float] | None = None
    spread: Spread | None = None
    statistic: Literal["best", "last", "mean_last_10"] | None = None
    substitution: str | None = None
    note: str = ""

    def check(self, ctx: Ctx, path: str) -> None:
        if self.range is None and self.spread is None:
            ctx.error(path, "give 'range' ([low, high]) or 'spread' (where the range comes from)")
        if self.spread is not None:
            self.spread.check(ctx, join(path, "spread"))
            if self.spread.binomial is not None and not 0.0 <= self.value <= 1.0:
                ctx.error(
                    join(join(path, "spread"), "binomial"),
                    f"a binomial spread is for a proportion in [0, 1]; the value is {self.value}",
                )
            band = self.spread.band(self.value)
            # a resolved config (config.yaml of a run) carries the derived range beside its spread: it must agree
            if self.range is not None and any(abs(a - b) > 1e-9 for a, b in zip(self.range, band)):
                ctx.error(
                    join(path, "range"),
                    f"the range {list(self.range)} contradicts the spread's "
                    f"[{band[0]:.6g}, {band[1]:.6g}]; give one of them",
                )
            object.__setattr__(self, "range", band)  # frozen: set once, while being built
        lo, hi = self.range
        if lo > hi:
            ctx.error(join(path, "range"), f"expected [low, high] with low <= high, received {list(self.range)}")
        if self.statistic is not None and not self.metric.startswith(("val_", "train_")):
            ctx.error(
                join(path, "statistic"),
                f"a statistic over epochs needs a val_ or train_ metric, received metric '{self.metric}'",
            )


@dataclass(frozen=True)
class ReportConfig:
    """How the results are presented: a comparison group and what-if rows for the parameter table."""

    group: str | None = None
    dense_head_what_if: tuple[int, ...] = ()
    augmentation_grid: bool = False  # augmentation.png: the model's Random* layers applied to one training image
    overlay: tuple[str, ...] = ()  # history columns the group's overlay plot draws (default: val accuracy/loss)
    group_note: str | None = None  # a paragraph under the group's heading: what the comparison shows and why
    table: str | None = None  # a results table in a paper's layout (e.g. Kim 2014 Table 2) ...
    row: str | None = None  # ... this experiment's row (e.g. the variant) ...
    column: str | None = None  # ... and column (e.g. the dataset)
    columns: tuple[str, ...] = ()  # the table's column order as the paper prints it
    caption: str | None = None  # a line under the table's title (e.g. which vectors the paper used)


@dataclass(frozen=True)
class Config:
    """One experiment: data → model → training → results, with its published reference."""

    name: str
    description: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    seed: int = 1
    reference: tuple[Reference, ...] = ()
    report: ReportConfig = field(default_factory=ReportConfig)
    quick: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))
    # Named variants of this experiment, each a mapping of dotted overrides like `quick`; variant V of
    # experiment E runs as `E:V` and writes results/E_V/.
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: types.MappingProxyType({}))
    # Set in a resolved config (a run's config.yaml) only: the profile its settings already are, which a re-run
    # of that file records as its own (`cnnlab run results/.../config.yaml` of a quick run is a quick run)
    profile: Literal["full", "quick"] | None = None

    def check(self, ctx: Ctx, path: str) -> None:
        from cnnlab.data import DATASETS  # numpy (the datasets' modules)

        if (
            self.train.validation_steps
            and not self.data.validation_split
            and self.data.validation != "test"
            and not DATASETS[self.data.dataset].has_validation
        ):
            ctx.error(
                "train.validation_steps",
                "there is no validation data to draw the steps from: set "
                "data.validation_split (or data.validation: test)",
            )
        if self.train.restore_best and self.data.validation == "test":
            ctx.error(
                "train.restore_best",
                "would pick the epoch on the test set (data.validation: test); "
                "validate on a split of the training data instead",
            )
        if (
            self.train.restore_best
            and not self.data.validation_split
            and not DATASETS[self.data.dataset].has_validation
        ):
            ctx.error("train.restore_best", "needs validation data to pick the best epoch: set data.validation_split")
        if not 0 <= self.seed < 2**32:  # numpy's and the backends' seeds are unsigned 32-bit integers
            ctx.error("seed", f"expected an integer from 0 to 4294967295 (2**32 - 1), received {self.seed}")
        for variant in self.variants:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", variant):
                ctx.error(join("variants", variant), "a variant name takes lower-case letters, digits and '_'")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", self.name):
            ctx.error(
                "name",
                f"expected lower-case letters, digits and '_' (it names results/<name>/), "
                f"received {describe(self.name)}",
            )
        if not keras_checks():
            return  # reference metrics are checked against the names Keras logs: the second layer
        names = self.train.metric_names()
        allowed = list(PARAM_METRICS) + [f"{split}_{m}" for split in ("test", "val", "train") for m in names]
        for i, ref in enumerate(self.reference):
            if ref.metric not in allowed:
                ctx.error(
                    join(join("reference", i), "metric"),
                    f"unknown metric '{ref.metric}'{suggest(ref.metric, allowed)}; allowed: {', '.join(allowed)}",
                )


# --------------------------------------------------------------------------------------------------
# Loading, profiles and overrides
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """A resolved config as it will run: the validated `config`, where it came from, profile and overrides."""

    config: Config
    path: Path
    profile: str
    overrides: tuple[str, ...]
    variant: str | None = None

    def resolved_yaml(self) -> str:
        header = (
            f"# Resolved config of experiment '{self.config.name}' from {self.path.name}"
            f"{f' (variant {self.variant})' if self.variant else ''}: "
            f"profile {self.profile}, overrides {list(self.overrides) or 'none'}.\n"
            "# Every default is filled in; `cnnlab run <this file>` repeats the run.\n"
        )
        plain = to_plain(dataclasses.replace(self.config, profile=self.profile))
        return header + yaml.safe_dump(plain, sort_keys=False, default_flow_style=None, width=100)

    def config_hash(self) -> str:
        """SHA-256 (16 hex digits) of what decides the numbers — data, model, training, seed — so that a new
        reference, description or report layout does not make a finished run look stale."""

        plain = to_plain(self.config)
        decisive = {k: plain[k] for k in ("name", "data", "model", "train", "seed")}
        text = yaml.safe_dump(decisive, sort_keys=True, default_flow_style=None, width=100)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_path(ref: str | os.PathLike) -> Path:
    """An experiment name (configs/<name>.yaml) or a path to a YAML file."""
    text = str(ref)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or os.sep in text or "/" in text:
        if not path.is_file():
            raise ConfigError(text, "", "no such config file")
        return path
    candidate = configs_dir() / f"{text}.yaml"
    if not candidate.is_file():
        names = experiment_names()
        raise ConfigError(
            text,
            "",
            f"unknown experiment{suggest(text, names)}; known: {', '.join(names)} (or give a path to a .yaml file)",
        )
    try:  # show configs/mnist.yaml, not an absolute path, when run from the repository
        return candidate.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return candidate


def experiment_names() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster, the same safe subset


class UniqueKeyLoader(_SAFE_LOADER):
    """The safe loader, refusing a key given twice in one mapping. Trap: YAML's loaders keep the last of two equal
    keys without a word, so `train: {epochs: 3, epochs: 30}` trained 30 epochs; a merge (`<<`) may still
    override what it merges."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeConstructor says so itself
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} (YAML would keep the last silently)",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


# YAML 1.2's floats with an exponent, `1e-4`, `5E3`, `2.5e4`: PyYAML follows YAML 1.1, which needs a dot and a
# signed exponent (`1.0e-4`), and reads the others as strings, so `learning_rate: 1e-4` reached Keras as '1e-4'.
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


_PARSED: dict[tuple[str, str], Any] = {}  # text → data, per process (configs repeat)


def read_yaml(path: Path) -> dict:
    """Parse a YAML mapping; syntax errors become one line with line and column.

    Trap: PyYAML's pure-Python parser took most of `cnnlab list`'s seconds (155 parses of 60 configs with their
    `extends`); the C loader and a per-process memo of each file's text keep it well under one."""

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror if isinstance(exc, OSError) else exc}") from None
    key = (str(path), text)
    if key in _PARSED:
        return copy.deepcopy(_PARSED[key])  # callers merge into what they get: never share it
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), where, f"invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), "", f"expected a mapping of config keys at the top level, received {describe(data)}"
        )
    _PARSED[key] = copy.deepcopy(data)
    return data


_SEGMENT = re.compile(r"[^.\[\]]+|\[\d+\]")
# a dotted path: names or list indices joined by single dots, an index also as [n]; no empty segment, no blank
_KEY = re.compile(r"[^.\[\]\s=]+(?:\[\d+\])*(?:\.[^.\[\]\s=]+(?:\[\d+\])*)*")


def split_key(key: str) -> list[str | int]:
    """'model.layers[2].Conv2D.filters' or 'model.layers.2.Conv2D.filters' → ['model', 'layers', 2, ...]."""
    parts: list[str | int] = []
    for seg in _SEGMENT.findall(key):
        seg = seg.strip("[]")
        parts.append(int(seg) if seg.isdigit() else seg)
    return parts


def apply_override(raw: dict, key: str, value: Any, ctx: Ctx) -> None:
    """Set one dotted key in the raw mapping (in place); lists are indexed by number."""
    parts = split_key(key)
    if not _KEY.fullmatch(key) or "".join(map(str, parts)) != re.sub(r"[.\[\]]", "", key):
        ctx.error(key, "malformed key: expected a dotted path such as train.epochs or model.layers.0.Conv2D.filters")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(map(str, parts[: depth + 1]))
        if isinstance(node, list):
            if not isinstance(part, int) or not 0 <= part < len(node):
                ctx.error(here, f"expected a list index from 0 to {len(node) - 1}, received {part!r}")
        elif isinstance(node, dict):
            if isinstance(part, int):
                part = str(part)
            if not last and part not in node:
                node[part] = {}
        else:
            ctx.error(here, f"cannot set a key inside {describe(node)}")
        if last:
            node[part] = value
        else:
            node = node[part]


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """['train.epochs=1', ...] → [('train.epochs', 1), ...]; values are read as YAML scalars/lists."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError("command line", item, "expected key=value (for example train.epochs=1)")
        key, text = item.split("=", 1)
        try:
            value = yaml.load(text, Loader=UniqueKeyLoader) if text.strip() else ""
        except yaml.constructor.ConstructorError as exc:
            raise ConfigError("command line", item, f"invalid YAML value: {exc.problem}") from None
        except yaml.YAMLError:
            value = text
        out.append((key.strip(), value))
    return out


def parse(raw: dict, ctx: Ctx) -> Config:
    return from_mapping(Config, raw, ctx, "")


def _validate_with(raw: dict, ctx: Ctx, overrides: Sequence[tuple[str, Any, str]]) -> Config:
    """Validate `raw`; an error under an overridden key names that override as its origin."""
    try:
        return parse(raw, ctx)
    except ConfigError as err:
        for key, value, origin in reversed(overrides):
            norm = ".".join(map(str, split_key(key)))
            err_norm = ".".join(map(str, split_key(err.path)))
            if err_norm == norm or err_norm.startswith(norm + "."):
                raise ConfigError(f"{ctx.file} ({origin} {key}={value!r})", err.path, err.message) from None
        raise


def load(
    ref: str | os.PathLike, overrides: Sequence[str] = (), profile: str = "full", keras: bool = True
) -> Experiment:
    """Read, merge and validate a config: file, then its `quick` profile if asked, then CLI overrides.

    Validation has two layers: the schema (keys, types, ranges, dataset and builder names and parameters,
    override syntax), pure Python, always first, so that those mistakes are reported without importing Keras;
    then, with `keras`, the Keras names and arguments (layers, optimizer, loss, metrics, callbacks) and the
    reference metrics against the names Keras logs."""
    token = _KERAS_CHECKS.set(False)
    try:
        exp = _load(ref, overrides, profile)
    finally:
        _KERAS_CHECKS.reset(token)
    return _load(ref, overrides, profile) if keras else exp


def _load(ref: str | os.PathLike, overrides: Sequence[str], profile: str) -> Experiment:

    if profile not in PROFILES:
        raise ConfigError("command line", "--profile", f"expected one of {', '.join(PROFILES)}, received '{profile}'")
    ref_text, variant = split_variant(ref)
    path = resolve_path(ref_text)
    ctx = Ctx(str(path))
    raw = read_raw(path)
    variant_overrides: list[tuple[str, Any, str]] = []
    if variant is not None:
        variants = raw.get("variants") or {}
        if not isinstance(variants, dict) or variant not in variants:
            known = sorted(variants) if isinstance(variants, dict) else []
            raise ConfigError(
                str(path),
                "variants",
                f"no variant '{variant}'{suggest(variant, known)}; known: {', '.join(known) or 'none'}",
            )
        changes = variants[variant]
        if not isinstance(changes, dict):
            raise ConfigError(
                str(path),
                join("variants", variant),
                f"expected a mapping of dotted keys to values, received {describe(changes)}",
            )
        _validate_with(raw, ctx, [])  # the base first, so that its own errors are not blamed on the variant
        raw = copy.deepcopy(raw)
        raw.pop("variants", None)
        variant_overrides = [(k, v, f"variant {variant}") for k, v in changes.items()]
        for key, value, _ in variant_overrides:
            apply_override(raw, key, copy.deepcopy(value), Ctx(f"{path} (variant {variant})"))
        raw["name"] = f"{raw.get('name')}_{variant}"
    base = _validate_with(raw, ctx, variant_overrides)
    if base.profile is not None:  # a resolved config: its settings are already its profile's
        profile, base = base.profile, dataclasses.replace(base, quick=types.MappingProxyType({}))
        raw = {**raw, "quick": {}}

    quick_raw = copy.deepcopy(raw)
    quick = [(k, v, "quick profile") for k, v in base.quick.items()]
    for key, value, _ in quick:
        apply_override(quick_raw, key, copy.deepcopy(value), Ctx(f"{path} (quick profile)"))
    quick_cfg = _validate_with(quick_raw, ctx, variant_overrides + quick)

    merged = copy.deepcopy(raw if profile == "full" else quick_raw)
    cli = [(k, v, "override") for k, v in parse_overrides(overrides)]
    for key, value, _ in cli:
        apply_override(merged, key, value, Ctx(f"{path} (override {key}={value!r})"))
    if not cli:
        config = base if profile == "full" else quick_cfg
    else:
        config = _validate_with(merged, ctx, variant_overrides + (quick if profile == "quick" else []) + cli)
    return Experiment(config, path, profile, tuple(overrides), variant)


def description_of(ref: str | os.PathLike) -> str:
    """A config's (or variant's) one-line description from its file and the files it extends, validating
    nothing: what `cnnlab list` shows, fast, even beside a config with a mistake (`cnnlab check` finds it)."""
    ref_text, variant = split_variant(ref)
    raw = read_raw(resolve_path(ref_text))
    changes = (raw.get("variants") or {}).get(variant) if variant and isinstance(raw.get("variants"), dict) else None
    text = (
        changes.get("description") if isinstance(changes, dict) and "description" in changes else raw.get("description")
    )
    return " ".join(str(text or "").split())


def split_variant(ref: str | os.PathLike) -> tuple[str, str | None]:
    """'kim_mr:static' → ('kim_mr', 'static'); a path or a plain name has no variant."""
    text = str(ref)
    if ":" in text and not Path(text).exists():
        name, variant = text.rsplit(":", 1)
        return name, variant
    return text, None


def deep_merge(base: dict, child: dict) -> dict:
    """`child` over `base`: mappings merge key by key, anything else (lists included) is replaced."""
    out = dict(base)
    for key, value in child.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_raw(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping with its `extends:` chain merged in (the file's own keys win)."""
    raw = read_yaml(path)
    parent_ref = raw.get("extends")
    if parent_ref is None:
        return raw
    if not isinstance(parent_ref, str):
        raise ConfigError(
            str(path), "extends", f"expected an experiment name or a path, received {describe(parent_ref)}"
        )
    try:  # a name is configs/<name>.yaml; a file name is relative to this file's folder
        parent = resolve_path(str(path.parent / parent_ref) if parent_ref.endswith((".yaml", ".yml")) else parent_ref)
    except ConfigError as err:
        raise ConfigError(str(path), "extends", err.message) from None
    if parent.resolve() in _seen or parent.resolve() == path.resolve():
        raise ConfigError(str(path), "extends", f"'{parent_ref}' extends this file again (a cycle)")
    return deep_merge(read_raw(parent, _seen + (path.resolve(),)), {k: v for k, v in raw.items() if k != "extends"})


def variant_refs(name: str) -> list[str]:
    """'name' plus 'name:variant' for each of its variants (for list/check/compare)."""
    raw = read_raw(resolve_path(name))
    variants = raw.get("variants") if isinstance(raw.get("variants"), dict) else {}
    return [name] + [f"{name}:{v}" for v in variants]


def experiment_refs() -> dict[str, str]:
    """Every runnable experiment: its results name (kim_mr_static) → its reference (kim_mr:static)."""
    out = {}
    for name in experiment_names():
        for ref in variant_refs(name):
            out[ref.replace(":", "_")] = ref
    return out
