"""`make bench-overhead`: training wall time of each family's experiment through cnnlab against the same model
written as a plain Keras script (MNIST convnet, IMDB 1D convnet, cats-vs-dogs convnet).

Reference: keras-io examples/vision/mnist_convnet.py (the plain script's shape); issues 2 and 5's target
(cnnlab / plain <= 1.02 in every family).
Trap: the two are timed alternately, in one process, on the same arrays and split, so a change in machine load
hits both; only `model.fit` is compared (cnnlab's data loading and result writing are reported separately).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def plain_mnist():
    """Lecture 002's convnet written as a plain Keras script (keras-io mnist_convnet.py's shape)."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model, 64


def plain_imdb():
    """Lecture 002's IMDB 1D convnet (DLwP listing 6.46, sigmoid output) as a plain Keras script."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(500,)),
            layers.Embedding(10_000, 128),
            layers.Conv1D(32, 7, activation="relu"),
            layers.MaxPooling1D(5),
            layers.Conv1D(32, 7, activation="relu"),
            layers.GlobalMaxPooling1D(),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=1e-4), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model, 128


def plain_cats_dogs():
    """DLwP listing 5.5's small-data convnet (rescaling as a layer) as a plain Keras script."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(shape=(150, 150, 3)), layers.Rescaling(1.0 / 255)])
    for filters in (32, 64, 128, 128):
        model.add(layers.Conv2D(filters, (3, 3), activation="relu"))
        model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Flatten())
    model.add(layers.Dense(512, activation="relu"))
    model.add(layers.Dense(1, activation="sigmoid"))
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=1e-4), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model, 20


@dataclass(frozen=True)
class Family:
    """One family's benchmark: the cnnlab experiment, its size for the bench, the plain script it is timed against."""

    experiment: str
    overrides: tuple[str, ...]
    plain: Callable
    what: str


FAMILIES = {
    "mnist": Family(
        "mnist",
        ("train.epochs=2", "data.train_subset=30000"),
        plain_mnist,
        "lecture 002's convnet, 27,000 training images, 2 epochs",
    ),
    "imdb": Family(
        "imdb_conv1d",
        ("train.epochs=2", "data.train_subset=5000"),
        plain_imdb,
        "the IMDB 1D convnet, 4,000 training reviews of 500 tokens, 2 epochs",
    ),
    "images": Family(
        "cats_dogs_scratch",
        ("train.epochs=2", "data.train_subset=600"),
        plain_cats_dogs,
        "the cats-vs-dogs convnet, 600 training images of 150×150, 2 epochs",
    ),
}


def free_previous_model() -> None:
    """Free the previous model before the next timed fit, so that its graphs are not collected during that fit
    (a suspected cause of the order effect between the two sides of a repeat; the alternation covers the rest)."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def plain_fit(family: Family, splits, epochs: int, batch_size: int, seed: int, n: int | None = None) -> float:
    """The plain script's `fit` on cnnlab's arrays (the first `n` only, for the warm-up); its seconds."""
    import keras

    free_previous_model()
    keras.utils.set_random_seed(seed)
    model, script_batch = family.plain()
    if script_batch != batch_size:
        raise SystemExit(
            f"bench: {family.experiment}: the plain script's batch {script_batch} differs "
            f"from the config's {batch_size}"
        )
    x, y = splits.x_train[:n], splits.y_train[:n]
    val = (splits.x_val[:n], splits.y_val[:n])
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=val, verbose=0)
    return time.perf_counter() - t0


def bench_family(name: str, family: Family, repeats: int, log=print) -> dict:
    """Alternate plain and cnnlab `repeats` times each after an untimed warm-up; the rows and medians."""
    from cnnlab import data as data_mod
    from cnnlab.config.experiment import load
    from cnnlab.train import runner

    exp = load(family.experiment, list(family.overrides))
    cfg = exp.config
    splits = data_mod.load(cfg.data, data_mod.resolve_data_dir(None, cfg.data.data_dir, exp.path), cfg.seed)
    # warm-up, not timed: the first fit of a model family in a process also pays one-time start-up
    plain_fit(family, splits, 1, cfg.train.batch_size, cfg.seed, n=4 * cfg.train.batch_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            order = ("plain", "cnnlab") if i % 2 == 0 else ("cnnlab", "plain")
            times = {}
            for who in order:
                if who == "plain":
                    times["plain"] = plain_fit(family, splits, cfg.train.epochs, cfg.train.batch_size, cfg.seed)
                else:
                    free_previous_model()
                    t0 = time.perf_counter()
                    result = runner.run(exp, Path(tmp), verbose=0, log=lambda *a: None)
                    timing = result.metrics["timing"]
                    # the probe batch traces the test step that plain Keras traces inside fit: count it
                    times["cnnlab"] = timing["fit_seconds"] + timing["probe_seconds"]
                    times["cnnlab_wall"] = time.perf_counter() - t0
                    times["cnnlab_data"] = timing["data_seconds"]
            rows.append(times)
            log(
                f"{name} repeat {i + 1}/{repeats}: plain fit {times['plain']:.2f} s, cnnlab fit {times['cnnlab']:.2f} "
                f"s (ratio {times['cnnlab'] / times['plain']:.3f}); cnnlab end to end {times['cnnlab_wall']:.2f} s"
            )
    plain = statistics.median(r["plain"] for r in rows)
    ours = statistics.median(r["cnnlab"] for r in rows)
    return {
        "name": name,
        "family": family,
        "rows": rows,
        "plain": plain,
        "cnnlab": ours,
        "ratio": ours / plain,
        "n_train": len(splits.x_train),
        "n_val": len(splits.x_val),
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "families", nargs="*", metavar="FAMILY", help=f"which families (default: all of {', '.join(FAMILIES)})"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=4,
        help="alternating repeats; an even number lets each side go first equally often (default 4)",
    )
    p.add_argument("--out", default="results/bench.md")
    args = p.parse_args(argv)
    args.families = args.families or list(FAMILIES)
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown:  # checked here: Python 3.11's argparse refuses an empty list against `choices`
        p.error(f"unknown family '{unknown[0]}'; choose from {', '.join(FAMILIES)}")

    import keras

    from cnnlab.store import meta
    from cnnlab.store.results import atomic_write

    results = [bench_family(name, FAMILIES[name], args.repeats) for name in args.families]
    env = meta.environment()
    ok = lambda r: "yes" if r <= 1.02 else "**no**"  # noqa: E731
    lines = [
        "# Benchmark: cnnlab vs plain Keras, per family",
        "",
        f"Generated by `make bench-overhead` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
        f"`python benchmarks/bench.py {' '.join(args.families)} --repeats {args.repeats}`.",
        "",
        f"- Machine: {env['device']}; {env['platform']}",
        f"- Software: Python {env['python']}, Keras {env['keras']}, backend {env['backend']} {env['backend_version']}, "
        f"numpy {env['numpy']}",
        "- Method: per family, the config run through cnnlab's runner and the same model written as a plain Keras "
        "script (in benchmarks/bench.py), both fitted on the same arrays and split with the same batch size, run "
        "alternately in one process after an untimed warm-up fit; the ratio is median over median. "
        "Each fit starts after "
        "`keras.backend.clear_session()` and a garbage collection, so neither side pays for the other's old model.",
        "",
        "| Family | Experiment | Work | plain Keras `fit` (s, median) | cnnlab probe + `fit` (s, median) | "
        "cnnlab / plain | ≤ 1.02 |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | `{r['family'].experiment}` | {r['family'].what} (batch {r['batch_size']}) | "
            f"{r['plain']:.2f} | {r['cnnlab']:.2f} | {r['ratio']:.3f} | {ok(r['ratio'])} |"
        )
    for r in results:
        lines += [
            "",
            f"## {r['name']}: every repeat",
            "",
            "| Repeat | plain Keras `fit` (s) | cnnlab probe + `fit` (s) | ratio | cnnlab data loading (s) | "
            "cnnlab end to end (s) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for i, row in enumerate(r["rows"], 1):
            lines.append(
                f"| {i} | {row['plain']:.2f} | {row['cnnlab']:.2f} | {row['cnnlab'] / row['plain']:.3f} | "
                f"{row['cnnlab_data']:.2f} | {row['cnnlab_wall']:.2f} |"
            )
    lines += [
        "",
        "cnnlab's training time counts its probe batch (one `evaluate` call before `fit` that checks the loss "
        "against the labels and traces the test step, which plain Keras traces inside `fit`). Its end-to-end "
        "time also includes loading the data (from cnnlab's cache), building the model, the test evaluation "
        "and writing the results folder. The repeats are minutes apart on a shared 2-core machine: compare "
        "the ratio of each repeat with the spread of the others before reading much into a few per cent.",
    ]
    atomic_write(Path(args.out), "\n".join(lines) + "\n")
    print(
        f"written {args.out}  [backend {keras.backend.backend()}]: "
        + ", ".join(f"{r['name']} {r['ratio']:.3f}" for r in results)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
