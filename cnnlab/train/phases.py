"""Training phases: which layers train in each phase of a run (fine-tuning as data, not code).

Reference: lecture 003 "Fine-tuning" (1. add a network on top of a trained base, 2. freeze the base, 3. train
the added part, 4. unfreeze some layers of the base, 5. train both jointly); DLwP §5.3.2, listings 5.22-5.23
(`conv_base.trainable = True`, then only block5_conv1 and later stay trainable; RMSprop(lr=1e-5)).
Trap: in Keras 3 setting `trainable` on a nested model sets it on every layer inside, so unfreezing one layer
of a frozen base means making the base trainable and then re-freezing every other layer in it.
"""

from __future__ import annotations

from collections.abc import Iterator

from cnnlab.config.schema import join
from cnnlab.errors import suggest


def walk(model, parents=()) -> Iterator[tuple[object, tuple]]:
    """Every layer, nested ones included, with its chain of enclosing models."""
    for layer in model.layers:
        yield layer, parents
        if getattr(layer, "layers", None):
            yield from walk(layer, parents + (layer,))


def layer_names(model) -> list[str]:
    return [layer.name for layer, _ in walk(model) if type(layer).__name__ != "InputLayer"]


def check(model, phases, ctx, path: str = "train.phases") -> None:
    """Every layer a phase names exists in the model (a ConfigError with a suggestion otherwise)."""
    names = layer_names(model)
    for i, phase in enumerate(phases):
        for key in ("unfreeze", "freeze"):
            for j, name in enumerate(getattr(phase, key)):
                if name not in names:
                    ctx.error(
                        join(join(join(path, i), key), j), f"no layer '{name}' in the model{suggest(name, names)}"
                    )


def apply(model, phase) -> None:
    """Set `trainable` as the phase says, leaving every other layer as it was."""
    index = {layer.name: (layer, parents) for layer, parents in walk(model)}
    before = {id(layer): layer.trainable for layer, _ in walk(model)}
    for name in phase.unfreeze:
        layer, parents = index[name]
        for parent in parents:
            if not parent.trainable:  # opening a frozen container opens everything inside: restore the rest
                parent.trainable = True
                for inner, _ in walk(parent):
                    inner.trainable = before[id(inner)]
        layer.trainable = True
    for name in phase.freeze:
        index[name][0].trainable = False
