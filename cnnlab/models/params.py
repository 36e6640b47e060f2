"""Parameter tables in the lecture's layout: `Layer (type) | Output Shape | Param #` with the totals rows.

Reference: lecture 002 ("CNN Modell": 93,322; "Why Pooling?": 55,744 for the base, 30,976 features and the
15.8 million of a Dense(512) head); the Keras 2 `model.summary()` the lectures print.
Trap: the "convolutional base" is the prefix of layers before the first Flatten/global pooling/Dense, so a
model without convolutions has none, and a shared weight counts once in the totals (they come from the model,
not from summing rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HEAD_START = (
    "Flatten",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "Dense",
)


@dataclass(frozen=True)
class Row:
    """One layer of the table."""

    name: str
    type: str
    output_shape: tuple
    params: int
    trainable: int
    field: str = "–"  # receptive field on the input (lecture 001), for layer chains
    formula: str | None = None  # the lecture's parameter formula, e.g. "32 × (3×3×1) + 32"
    formula_params: int | None = None


@dataclass(frozen=True)
class Table:
    """The whole table: rows, totals, the convolutional base and what-if dense heads."""

    model_name: str
    rows: tuple[Row, ...]
    total: int
    trainable: int
    non_trainable: int
    base_params: int | None  # parameters of the convolutional base, or None without one
    base_output: tuple | None  # its output shape, e.g. (None, 22, 22, 64)
    what_if: tuple[tuple[int, int], ...]  # (dense units, parameters of such a layer on the base's features)

    @property
    def base_features(self) -> int | None:
        return None if self.base_output is None else math.prod(d for d in self.base_output[1:])


def count_weights(weights) -> int:
    """The number of parameters in `weights` (a model's, a layer's, or its trainable ones)."""
    return int(sum(math.prod(w.shape) for w in weights))


def _shape(layer) -> tuple:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # a layer used twice has no single output
        return ()
    return tuple(shape)


def table(model, what_if_units=()) -> Table:
    """The parameter table of a built `keras.Model`, with receptive field and formula per layer."""
    import keras

    from cnnlab.lectures import arith  # numpy

    fields = arith.receptive_fields(model) if isinstance(model, keras.Sequential) else {}
    rows = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        field = fields.get(layer.name)
        try:
            f = arith.formula(layer)
        except (AttributeError, ValueError):  # a shared layer has no single input shape
            f = None
        rows.append(
            Row(
                layer.name,
                type(layer).__name__,
                _shape(layer),
                count_weights(layer.weights),
                count_weights(layer.trainable_weights),
                field.text() if field else "–",
                f[0] if f else None,
                f[1] if f else None,
            )
        )
    rows = tuple(rows)
    trainable = count_weights(model.trainable_weights)
    total = count_weights(model.weights)
    base_len = next((i for i, r in enumerate(rows) if r.type in HEAD_START), len(rows))
    conv_like = {
        layer.name
        for layer in model.layers
        if "Conv" in type(layer).__name__ or any("Conv" in type(sub).__name__ for sub in getattr(layer, "layers", []))
    }
    # a convolutional base is a chain of layers before the head: a branching (functional) model such as Kim's
    # CNN has none in the lectures' sense, so no base line and no what-if head for it
    has_conv = isinstance(model, keras.Sequential) and any(r.name in conv_like for r in rows[:base_len])
    base_params = sum(r.params for r in rows[:base_len]) if has_conv else None
    base_output = rows[base_len - 1].output_shape if has_conv and base_len else None
    features = math.prod(base_output[1:]) if base_output else None
    what_if = tuple((u, features * u + u) for u in what_if_units) if features else ()
    return Table(model.name, rows, total, trainable, total - trainable, base_params, base_output, what_if)


def shape_text(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def to_text(t: Table, extended: bool = False) -> str:
    """The table as Keras 2's `model.summary()` printed it, plus the base and what-if lines; `extended` adds
    the lecture's parameter formula and the receptive field of each layer."""
    w1, w2, w3 = max(29, max(len(f"{r.name} ({r.type})") for r in t.rows) + 2), 26, 10
    w4 = max([len("Lecture formula")] + [len(r.formula or "") for r in t.rows]) + 2 if extended else 0
    w5 = max([len("Receptive field")] + [len(r.field) for r in t.rows]) if extended else 0
    width = w1 + w2 + w3 + w4 + w5
    rule = "_" * width
    head = f"{'Layer (type)':<{w1}}{'Output Shape':<{w2}}{'Param #':<{w3}}"
    if extended:
        head += f"{'Lecture formula':<{w4}}{'Receptive field':<{w5}}"
    lines = [f'Model: "{t.model_name}"', rule, head.rstrip(), "=" * width]
    for i, r in enumerate(t.rows):
        line = f"{r.name + ' (' + r.type + ')':<{w1}}{shape_text(r.output_shape):<{w2}}{r.params:<{w3}}"
        if extended:
            line += f"{r.formula or '–':<{w4}}{r.field:<{w5}}"
        lines.append(line)
        lines.append(rule if i < len(t.rows) - 1 else "=" * width)
    lines += [
        f"Total params: {t.total:,}",
        f"Trainable params: {t.trainable:,}",
        f"Non-trainable params: {t.non_trainable:,}",
    ]
    lines += [rule] + _notes(t)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _notes(t: Table) -> list[str]:
    if t.base_params is None:
        return []
    features = t.base_features
    dims = " × ".join(str(d) for d in t.base_output[1:])
    notes = [
        f"Convolutional base: {t.base_params:,} params, output {shape_text(t.base_output)}"
        f" = {dims} = {features:,} features"
    ]
    for units, params in t.what_if:
        notes.append(
            f"A Dense({units}) layer on those features alone: {features:,} × {units} + {units} = {params:,} params"
        )
    return notes


def to_markdown(t: Table, title: str) -> str:
    """The table as Markdown (numbers formatted here only; params.csv keeps them raw)."""
    lines = [
        f"# {title}",
        "",
        "| Layer (type) | Output Shape | Param # | Trainable | Lecture formula | Receptive field |",
        "|---|---|---:|---:|---|---|",
    ]
    for r in t.rows:
        lines.append(
            f"| {r.name} ({r.type}) | {shape_text(r.output_shape)} | {r.params:,} | {r.trainable:,} | "
            f"{r.formula if r.formula is not None else '–'} | {r.field} |"
        )
    lines += [
        "",
        f"Total params: {t.total:,}  ",
        f"Trainable params: {t.trainable:,}  ",
        f"Non-trainable params: {t.non_trainable:,}",
        "",
    ]
    lines += [f"- {n}" for n in _notes(t)]
    return "\n".join(lines).rstrip() + "\n"


def to_records(t: Table) -> list[dict]:
    """Raw rows for params.csv."""
    return [
        {
            "layer": r.name,
            "type": r.type,
            "output_shape": shape_text(r.output_shape),
            "params": r.params,
            "trainable_params": r.trainable,
            "formula": r.formula,
            "formula_params": r.formula_params,
            "receptive_field": r.field,
        }
        for r in t.rows
    ]


def summary(t: Table) -> dict:
    """The parameter metrics (params_total, ...) that references can name."""
    out = {"params_total": t.total, "params_trainable": t.trainable, "params_non_trainable": t.non_trainable}
    if t.base_params is not None:
        out["params_conv_base"] = t.base_params
    return out


def phases_markdown(records: list[dict]) -> str:
    """Trainable / non-trainable parameters in each training phase (fine-tuning)."""
    lines = [
        "## Trainable parameters per phase",
        "",
        "| Phase | Epochs | Trainable params | Non-trainable params |",
        "|---|---|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r['phase']}. {r['name']} | {r['first_epoch']}-{r['first_epoch'] + r['epochs'] - 1} | "
            f"{r['params_trainable']:,} | {r['params_non_trainable']:,} |"
        )
    return "\n".join(lines) + "\n"
