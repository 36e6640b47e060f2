"""`make bench-precision`: float32 against mixed_bfloat16 on this machine — the matmul peak of each dtype, the
VGG16 convolutional base's forward pass, each family's training throughput in both precisions with its share of
that dtype's peak (the roofline), and the full faithful suite's estimated wall time in each precision, in one run
(results/bench_precision.md).

Reference: issue 13 (bfloat16 where the hardware has it; targets on an AMX machine: VGG16 forward >= 4x,
cats-vs-dogs convnet >= 2.5x, Kim >= 2.5x, the full-suite estimate cut >= 2.5x); cnnlab/train/precision.py
(what `auto` picks here).
Trap: on a CPU without `amx_bf16` or `avx512_bf16` bfloat16 is emulated: slower than float32, so this bench is
what shows `auto` right to stay float32 there; the throughput of one family is only comparable within one run
of the bench (the machines differ from day to day), so both precisions are measured side by side, alternating.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {  # experiment → overrides that keep one measurement to well under a minute on 2 CPU cores
    "mnist": ["data.train_subset=6000", "data.test_subset=500", "train.epochs=2"],
    "imdb_conv1d": ["data.train_subset=2000", "data.test_subset=500", "train.epochs=2"],
    "kim_mr:static": ["train.epochs=2", "data.train_subset=3000", "data.test_subset=500"],
    "kim_mr:non_static": ["train.epochs=2", "data.train_subset=3000", "data.test_subset=500"],
    "kim_mr": ["train.epochs=2", "data.train_subset=3000", "data.test_subset=500"],
    "cats_dogs_scratch": [
        "data.train_subset=320",
        "data.val_subset=100",
        "data.test_subset=100",
        "train.epochs=3",
        "train.steps_per_epoch=10",
        "train.validation_steps=5",
    ],
}
VGG16_FORWARD = "VGG16 conv base forward (150×150, batch 32)"
PRECISIONS = ("float32", "mixed_bfloat16")


def matmul_peak(dtype: str, n: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of an n × n matmul in `dtype` under the active backend (best of `repeats`, after a warm-up)."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).normal(size=(n, n)), dtype=dtype)
    b = keras.ops.convert_to_tensor(np.random.default_rng(1).normal(size=(n, n)), dtype=dtype)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def forward_flops(model) -> tuple[int, int]:
    """(all, trainable) floating-point operations of one sample's forward pass through the kernels of `model`:
    2 × (kernel size) × (output positions) for every call of a layer with a kernel (Conv1D/2D, Dense) in the
    model's graph, nested models (a VGG16 base inside a Sequential) opened; a multiply-add is two.
    Trap: a layer remembers every symbolic call ever made of it (cnnlab's parameter tables build sub-models), so
    the calls are read off the model's own graph, where Kim's multichannel convolution counts once per channel."""
    graph = getattr(model, "_functional", None) or model
    nodes = [node for depth in getattr(graph, "_nodes_by_depth", {}).values() for node in depth]
    total = trainable = 0
    for node in nodes:
        layer = node.operation
        if getattr(layer, "layers", None):
            sub_total, sub_trainable = forward_flops(layer)
            total, trainable = total + sub_total, trainable + sub_trainable
            continue
        kernel = getattr(layer, "kernel", None)
        if kernel is None or not node.outputs:
            continue
        flops = 2 * math.prod(kernel.shape) * math.prod(d for d in node.outputs[0].shape[1:-1] if d)
        total += flops
        trainable += flops if layer.trainable else 0
    return total, trainable


def train_flops(experiment: str, overrides: list[str]) -> float | None:
    """≈ FLOPs per training sample: the forward pass, plus twice the trainable layers' share for the backward
    pass (the input and the weight gradients). Built as `cnnlab params` builds it; None if it does not build."""
    from cnnlab import data as data_mod
    from cnnlab.config.experiment import Ctx, load
    from cnnlab.models.stack import build_model, needs_data

    try:
        exp = load(experiment, overrides, "full")
        extras = None
        if needs_data(exp.config.model):
            cfg = exp.config
            data_dir = data_mod.resolve_data_dir(None, cfg.data.data_dir, exp.path)
            extras = data_mod.load(cfg.data, data_dir, cfg.seed).extras
        model = build_model(exp.config.model, exp.config.name, Ctx(str(exp.path)), data=extras)
    except Exception as e:  # a missing dataset here only leaves the roofline column empty
        print(f"bench: no FLOP count for {experiment}: {e}", file=sys.stderr)
        return None
    total, trainable = forward_flops(model)
    return float(total + 2 * trainable)


def steady_samples_per_second(m: dict) -> float:
    """A run's training samples per second over its steady epochs (all but the first, which also traces)."""
    epochs = m["timing"]["epoch_seconds"]
    per_epoch = m["train_samples_seen"] / max(m["epochs_run"], 1)
    return per_epoch / (sum(epochs[1:]) / max(len(epochs) - 1, 1))


def throughput(experiment: str, overrides: list[str], precision: str, results: Path) -> dict:
    """Training samples per second of the steady epochs (all but the first) of one run in its own process."""
    from bench_backends import run_metrics

    m = run_metrics(experiment, [*overrides, "--precision", precision], results)
    if "error" in m:
        return m
    return {
        "samples_per_second": steady_samples_per_second(m),
        "policy": m["precision"]["policy"],
        "device": m["environment"]["device"],
    }


def vgg16_forward_child(policy: str, batches: int = 6) -> dict:
    """In a fresh process (the dtype policy is global): images/s of the VGG16 convolutional base's forward pass
    on 150×150 inputs in batches of 32 (random weights: the arithmetic is the weights' shape, not their values)."""
    import keras
    import numpy as np

    keras.config.set_dtype_policy(policy)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(150, 150, 3))
    x = np.random.default_rng(0).uniform(0, 255, size=(32, 150, 150, 3)).astype("float32")
    base.predict(x, verbose=0)  # traces
    t0 = time.perf_counter()
    for _ in range(batches):
        base.predict(x, verbose=0)
    seconds = time.perf_counter() - t0
    total, _ = forward_flops(base)
    return {"samples_per_second": batches * 32 / seconds, "flops": total, "policy": policy}


def vgg16_forward(policy: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--vgg16-forward", policy],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return {"error": lines[-1] if lines else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def family(exp) -> str | None:
    """The bench case whose bfloat16/float32 ratio stands for `exp`'s in the suite estimate: what dominates its
    arithmetic (the VGG16 base, Kim's embedding updates by variant, the dataset's own convnet)."""
    model = exp.config.model
    if any(spec.name == "VGG16" for spec in (*(model.layers or ()), *(exp.config.data.features or ()))):
        return VGG16_FORWARD
    if model.builder == "kim_cnn":
        variant = model.params.get("variant", "rand")
        return {"rand": "kim_mr", "static": "kim_mr:static"}.get(variant, "kim_mr:non_static")
    return {"mnist": "mnist", "imdb": "imdb_conv1d", "cats_dogs": "cats_dogs_scratch"}.get(exp.config.data.dataset)


def suite_estimate(ratios: dict[str, float], results_root: Path) -> dict:
    """The full faithful suite (every experiment, the references' repeats: `reproduce --dry-run`'s plan) in
    float32 from the earlier float32 runs' wall times, in bfloat16 with each job's time divided by its family's
    measured speed-up, and as configured (bfloat16 only where the config's `train.precision` resolves to it)."""
    from cnnlab.batch import reproduce
    from cnnlab.config.experiment import experiment_refs
    from cnnlab.store.results import precision_of

    jobs = reproduce.plan(list(experiment_refs().values()), (), None, "full")
    from cnnlab.train.precision import resolve

    out = {"jobs": len(jobs), "known": 0, "float32": 0.0, "mixed_bfloat16": 0.0, "configured": 0.0, "devices": set()}
    for job in jobs:
        runs = [(r, m) for r, m in reproduce.existing_runs(results_root, job.name) if precision_of(m) == "float32"]
        seconds = reproduce.previous_seconds(job, runs)
        ratio = ratios.get(family(job.experiment) or "")
        if seconds is None or not ratio:
            continue
        out["known"] += 1
        out["float32"] += seconds
        out["mixed_bfloat16"] += seconds / ratio
        out["configured"] += seconds / ratio if resolve(job.precision).policy == "mixed_bfloat16" else seconds
        out["devices"] |= {(m.get("environment") or {}).get("device") for _, m in runs[-1:]}
    return out


def median(values: list[float]) -> float | None:
    values = sorted(values)
    return values[len(values) // 2] if values else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/bench_precision.md")
    p.add_argument("--repeats", type=int, default=2, help="alternating repeats of each case and precision")
    p.add_argument("--vgg16-forward", metavar="POLICY", help=argparse.SUPPRESS)  # the child of vgg16_forward
    args = p.parse_args(argv)
    if args.vgg16_forward:
        print(json.dumps(vgg16_forward_child(args.vgg16_forward)))
        return 0
    import keras

    from cnnlab.paths import results_root
    from cnnlab.store import meta
    from cnnlab.store.results import atomic_write
    from cnnlab.train import precision

    auto = precision.resolve("auto")
    flags = sorted(set(precision.CPU_BF16_FLAGS) & precision.cpu_flags())
    peaks = {d: matmul_peak(d.replace("mixed_", "")) for d in PRECISIONS}
    got: dict[str, dict[str, list[dict]]] = {}
    flops: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]  # each side first equally often
            for d in order:
                got.setdefault(VGG16_FORWARD, {p: [] for p in PRECISIONS})[d].append(vgg16_forward(d))
        for experiment, overrides in CASES.items():
            got[experiment] = {d: [] for d in PRECISIONS}
            for r in range(args.repeats):
                for d in PRECISIONS if r % 2 == 0 else PRECISIONS[::-1]:
                    got[experiment][d].append(throughput(experiment, overrides, d, Path(tmp)))
            flops[experiment] = train_flops(experiment, overrides)
    flops[VGG16_FORWARD] = next((g["flops"] for g in got[VGG16_FORWARD]["float32"] if "flops" in g), None)
    speed = {
        case: {d: median([g["samples_per_second"] for g in runs[d] if "samples_per_second" in g]) for d in PRECISIONS}
        for case, runs in got.items()
    }
    ratios = {
        case: s["mixed_bfloat16"] / s["float32"] for case, s in speed.items() if s["float32"] and s["mixed_bfloat16"]
    }
    suite = suite_estimate(ratios, results_root())

    def pct(case, d):
        s, f = speed[case][d], flops.get(case)
        return f"{100 * s * f / 1e9 / peaks[d]:.0f}%" if s and f else "–"

    lines = [
        "# Benchmark: float32 against mixed_bfloat16",
        "",
        f"Generated by `make bench-precision` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) on "
        f"{meta.device()}, {platform.machine()}, backend {keras.backend.backend()}, Keras {keras.__version__}. "
        f"Native bfloat16 CPU flags: {', '.join(flags) or 'none'}. `train.precision: auto` here: "
        f"**{auto.policy}** ({auto.reason}).",
        "",
        f"Matmul 4096² (best of 5): float32 {peaks['float32']:.1f} GFLOP/s, bfloat16 "
        f"{peaks['mixed_bfloat16']:.1f} GFLOP/s ({peaks['mixed_bfloat16'] / peaks['float32']:.2f}×).",
        "",
        "| Work (overrides) | float32 samples/s | mixed_bfloat16 samples/s | bf16 / f32 | GFLOP per sample "
        "| float32 share of its peak | bfloat16 share of its peak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, s in speed.items():
        errors = [g["error"] for d in PRECISIONS for g in got[case][d] if "error" in g]
        label = case if case == VGG16_FORWARD else f"{case} training ({' '.join(CASES[case])})"
        f = flops.get(case)
        f32, bf16 = (f"{s[d]:,.0f}" if s[d] else "–" for d in PRECISIONS)
        lines.append(
            f"| {label} | {f32} | {bf16} | "
            f"{f'{ratios[case]:.2f}×' if case in ratios else (errors[0] if errors else '–')} | "
            f"{f'{f / 1e9:.3f}' if f else '–'} | {pct(case, 'float32')} | {pct(case, 'mixed_bfloat16')} |"
        )
    devices = ", ".join(sorted(d for d in suite["devices"] if d)) or "no earlier run"
    lines += [
        "",
        f"Each cell is the median of {args.repeats} runs in their own processes, the precisions alternating; "
        "training samples/s over the steady epochs (the first also traces the model); the forward pass over 6 "
        "batches after a traced one. GFLOP per sample counts the kernels' multiply-adds (Conv, Dense) twice; "
        "training ≈ the forward pass plus twice its trainable layers' share (the two gradients); the share is "
        "that rate against the same dtype's matmul peak above.",
        "",
        "## The full faithful suite's estimate, per precision",
        "",
        f"`reproduce`'s full plan ({suite['jobs']} runs: every experiment, 3 seeds, Kim's cross-validated sets "
        f"over 10 folds), of which {suite['known']} have an earlier float32 run to time them by ({devices}):",
        "",
        "| precision | estimated wall time | × |",
        "|---|---:|---:|",
        f"| float32 (earlier runs' wall times) | {suite['float32'] / 3600:.1f} h | 1.00× |",
    ]
    if suite["mixed_bfloat16"]:
        lines.append(
            f"| mixed_bfloat16 (each run ÷ its family's bf16 / f32 above) | {suite['mixed_bfloat16'] / 3600:.1f} h "
            f"| {suite['float32'] / suite['mixed_bfloat16']:.2f}× |"
        )
        lines.append(
            f"| as the configs say (`auto` → {auto.policy} here; float32 where a config keeps it) | "
            f"{suite['configured'] / 3600:.1f} h | {suite['float32'] / suite['configured']:.2f}× |"
        )
    lines += [
        "",
        "A run's family is what dominates its arithmetic: the VGG16 base (features, end to end, fine-tuning: the "
        "forward ratio), Kim's CNN by variant (rand; static; non-static and multichannel), else its dataset's "
        "convnet (MNIST, IMDB, cats vs dogs). The float32 times are the machines' named above, not necessarily "
        "this one's; the bfloat16 column assumes this machine's ratio there.",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
