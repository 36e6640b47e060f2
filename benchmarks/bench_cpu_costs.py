"""`make bench-cpu`: the CPU costs besides precision that issue 13 asks to measure before adopting anything —
where Kim's CNN-rand and CNN-non-static spend their extra time (the embedding's backward pass and its optimizer,
and what AdadeltaRowLazy's same steps on only the batch's rows save),
what XLA (`jit_compile`) does for each family under TensorFlow, and TensorFlow's intra/inter-op threads on this
machine's cores (results/bench_cpu.md).

Reference: issue 13 ("CNN-rand and CNN-non-static train ~10x slower than CNN-static ... profile it; XLA
jit_compile ... check the others; intra/inter-op threads on 2 cores"); Keras 3 `Trainer.compile(jit_compile=
"auto")` and `model_supports_jit` (keras/src/trainers/trainer.py); TensorFlow's TF_NUM_INTRAOP_THREADS and
TF_NUM_INTEROP_THREADS.
Trap: under TensorFlow, Keras's `jit_compile="auto"` (what cnnlab compiles with) means *no* XLA on a CPU-only
machine (`Trainer._resolve_auto_jit_compile`), and also none while op determinism is on (`model_supports_jit`),
so every TensorFlow CPU run so far trained without XLA. cnnlab has no jit_compile setting (none was worth adding
unless measured faster), so the XLA arms run this script as the child, which forces `model.compile(jit_compile=
True)` around an unchanged `cnnlab run`. Every arm is float32 (precision is
bench_precision's question) and runs in its own process; arms alternate over the repeats.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_precision import CASES, steady_samples_per_second  # noqa: E402  (after the path insert above)

F32 = ["--precision", "float32"]
KIM = [*CASES["kim_mr"], *F32]  # 2 epochs on 3,000 MR sentences
SGD = "train.optimizer={SGD: {learning_rate: 0.1}}"  # the same net, an optimizer with no accumulators
LAZY = "train.optimizer={AdadeltaRowLazy: {learning_rate: 1.0, rho: 0.95, epsilon: 1.0e-6}}"  # Kim's, row-lazy
# (label, experiment, overrides, environment): each group's first arm is its baseline
GROUPS = {
    "Kim's CNN on MR: where the trained embedding's time goes (float32, 2 epochs on 3,000 sentences)": [
        ("CNN-static, GloVe 50-d, frozen (Adadelta)", "kim_mr:static", KIM, {}),
        ("CNN-non-static, GloVe 50-d, trained (Adadelta)", "kim_mr:non_static", KIM, {}),
        ("CNN-non-static, trained, SGD instead of Adadelta", "kim_mr:non_static", [*KIM, SGD], {}),
        ("CNN-non-static, trained, AdadeltaRowLazy (the same steps)", "kim_mr:non_static", [*KIM, LAZY], {}),
        ("CNN-rand, 300-d, trained (Adadelta)", "kim_mr", KIM, {}),
        ("CNN-rand, 300-d, trained, SGD instead of Adadelta", "kim_mr", [*KIM, SGD], {}),
        ("CNN-rand, 300-d, trained, AdadeltaRowLazy (the same steps)", "kim_mr", [*KIM, LAZY], {}),
    ],
}
FAMILIES = {  # XLA and threads: bench_precision's short training per family, float32
    exp: [*CASES[exp], *F32] for exp in ("mnist", "imdb_conv1d", "kim_mr:static", "cats_dogs_scratch")
}
JIT = "CNNLAB_BENCH_JIT_COMPILE"  # an arm's environment: this script's child forces model.compile(jit_compile=...)
for exp, args in FAMILIES.items():
    GROUPS[f"XLA under TensorFlow: {exp}"] = [
        ("as configured (jit_compile='auto': no XLA on a CPU-only machine)", exp, args, {}),
        ("jit_compile=True (XLA), op determinism on", exp, args, {JIT: "1"}),
        ("jit_compile=True (XLA), train.deterministic=false", exp, [*args, "train.deterministic=false"], {JIT: "1"}),
    ]
GROUPS["TensorFlow threads: cats_dogs_scratch (float32)"] = [
    ("TensorFlow's default (intra = inter = the cores)", "cats_dogs_scratch", FAMILIES["cats_dogs_scratch"], {}),
    (
        "TF_NUM_INTRAOP_THREADS=2, TF_NUM_INTEROP_THREADS=1",
        "cats_dogs_scratch",
        FAMILIES["cats_dogs_scratch"],
        {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"},
    ),
    (
        "TF_NUM_INTRAOP_THREADS=1, TF_NUM_INTEROP_THREADS=2",
        "cats_dogs_scratch",
        FAMILIES["cats_dogs_scratch"],
        {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"},
    ),
]
GROUPS["TensorFlow threads: kim_mr CNN-rand (float32)"] = [
    ("TensorFlow's default (intra = inter = the cores)", "kim_mr", KIM, {}),
    (
        "TF_NUM_INTRAOP_THREADS=2, TF_NUM_INTEROP_THREADS=1",
        "kim_mr",
        KIM,
        {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"},
    ),
]


def samples_per_second(experiment: str, overrides: list[str], env: dict, results: Path) -> dict:
    """Training samples per second over the steady epochs (all but the first, which also traces) of one run in
    its own process, with its test accuracy."""
    from bench_backends import run_metrics

    if env.get(JIT):
        m = jit_run_metrics(experiment, overrides, results, env)
    else:
        m = run_metrics(experiment, overrides, results, {"KERAS_BACKEND": "tensorflow", **env})
    if "error" in m:
        return m
    return {
        "samples_per_second": steady_samples_per_second(m),
        "test_accuracy": (m.get("measured") or {}).get("test_accuracy"),
    }


def jit_run_metrics(experiment: str, overrides: list[str], results: Path, env: dict) -> dict:
    """`cnnlab run` in this script's child with model.compile forced to jit_compile=True; its metrics.json."""
    from bench_backends import run_metrics

    entry = [sys.executable, __file__, "--jit-child"]
    return run_metrics(experiment, overrides, results, {"KERAS_BACKEND": "tensorflow", **env}, entry=entry)


def jit_child(cnnlab_args: list[str]) -> int:
    """The child of jit_run_metrics: `cnnlab ARGS` with every model.compile given jit_compile=True."""
    import keras

    from cnnlab.cli import main as cnnlab_main

    compile_ = keras.Model.compile

    def compile_with_xla(self, *a, **k):
        k["jit_compile"] = True
        return compile_(self, *a, **k)

    keras.Model.compile = compile_with_xla
    return cnnlab_main(cnnlab_args)


def earlier_sections(path: Path, remeasured: set[str]) -> dict[str, list[str]]:
    """The '## title' sections of an earlier results file that this run (--only) does not measure again, each
    with its 'Measured <date>' line (the file's own date for a section written before those lines)."""
    import re

    try:
        text = path.read_text()
    except OSError:
        return {}
    found = re.search(r"Generated by `make bench-cpu` \(([^)]*)\)", text)
    out: dict[str, list[str]] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            out[title] = []
        if title is not None:
            out[title].append(line)
    for body in out.values():
        while body and not body[-1]:
            body.pop()
        if found and not any(ln.startswith("Measured ") for ln in body):
            body[1:1] = ["", f"Measured {found.group(1)}."]
    return {t: body for t, body in out.items() if t not in remeasured}


def median(values: list[float]) -> float | None:
    values = sorted(values)
    return None if not values else (values[(len(values) - 1) // 2] + values[len(values) // 2]) / 2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/bench_cpu.md")
    p.add_argument("--repeats", type=int, default=2, help="repeats of each arm, the arms' order alternating")
    p.add_argument("--only", help="run only the groups whose title contains this text")
    p.add_argument("--jit-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # jit_run_metrics's child
    args = p.parse_args(argv)
    if args.jit_child is not None:
        return jit_child(args.jit_child)
    import keras

    from cnnlab.store import meta
    from cnnlab.store.results import atomic_write

    groups = {t: arms for t, arms in GROUPS.items() if not args.only or args.only in t}
    got: dict[str, list[list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for title, arms in groups.items():
            got[title] = [[] for _ in arms]
            for r in range(args.repeats):
                order = list(range(len(arms))) if r % 2 == 0 else list(range(len(arms)))[::-1]
                for k in order:
                    _, exp, overrides, env = arms[k]
                    got[title][k].append(samples_per_second(exp, overrides, env, Path(tmp)))
                    print(f"{title} | {arms[k][0]}: {got[title][k][-1]}", flush=True)
    lines = [
        "# Benchmark: CPU costs besides precision",
        "",
        f"Generated by `make bench-cpu` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), TensorFlow backend, "
        f"Keras {keras.__version__}; each section says when and on which machine it was measured; each cell the "
        f"median of {args.repeats} runs in their own processes, the arms' order alternating; training "
        "samples/s over the steady epochs. Float32 throughout. See the script's docstring for why the XLA arm is "
        "`train.deterministic=false`.",
    ]
    machine = f"{meta.device()}, {platform.machine()}"
    kept = earlier_sections(Path(args.out), set(groups)) if args.only else {}
    for title in GROUPS:  # the groups' own order, each either measured now or kept from the file
        if title in kept:
            lines += ["", *kept[title]]
            continue
        if title not in groups:
            continue
        arms = groups[title]
        lines += [
            "",
            f"## {title}",
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}.",
            "",
        ]
        lines += ["| arm | samples/s | × the first | test accuracy |", "|---|---:|---:|---:|"]
        speeds = [median([g["samples_per_second"] for g in runs if "samples_per_second" in g]) for runs in got[title]]
        for (label, *_), s, runs in zip(arms, speeds, got[title]):
            errors = [g["error"] for g in runs if "error" in g]
            acc = median([g["test_accuracy"] for g in runs if g.get("test_accuracy") is not None])
            ratio = f"{s / speeds[0]:.2f}×" if s and speeds[0] else "–"
            cell = f"{s:,.0f}" if s else f"error: {errors[0] if errors else '?'}"
            lines.append(f"| {label} | {cell} | {ratio} | {'–' if acc is None else f'{acc:.4f}'} |")
    atomic_write(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
