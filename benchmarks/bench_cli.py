"""`make bench-cli`: the wall time of the commands a user waits on before anything trains — `cnnlab list`,
`cnnlab check` of one config (and of Kim's seven variants), a schema error, a signature error — each a fresh
process as from a shell, against issue 15's target of one second on 2 CPU cores (results/bench_cli.md).

Reference: issue 15 ("cnnlab list, cnnlab check of one config and every schema error: < 1 s wall").
Trap: the first check after a new Keras version or a change to cnnlab's own layers reads the signatures from
Keras (it imports TensorFlow: seconds) and keeps them in .cache/keras_signatures/; every later check reads that
file. Both are measured: the cold one once, in an empty cache, the warm ones as the median of several.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0
CASES = {  # label → (argv, the exit status it must give)
    "cnnlab list": (["list"], 0),
    "cnnlab check mnist": (["check", "mnist"], 0),
    "cnnlab check kim_mr (7 variants × 2 profiles)": (["check", "kim_mr"], 0),
    "schema error: run mnist train.epochs=five": (["run", "mnist", "train.epochs=five"], 2),
    "signature error: check mnist train.optimizer=rmsprob": (["check", "mnist", "train.optimizer=rmsprob"], 2),
}


def once(argv: list[str], env: dict, expect: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *argv], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != expect:
        raise SystemExit(
            f"bench-cli: {' '.join(argv)} exited {proc.returncode}, expected {expect}: {proc.stderr.strip()[-300:]}"
        )
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_cli", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="results/bench_cli.md")
    args = p.parse_args(argv)
    from cnnlab.store import meta

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "CNNLAB_CACHE_DIR": cache, "TF_CPP_MIN_LOG_LEVEL": "3"}
        cold = once(["check", "mnist"], env, 0)  # an empty cache: the signatures read from Keras
        for label, (cmd, expect) in CASES.items():
            times = [once(cmd, env, expect) for _ in range(args.repeats)]
            rows.append((label, statistics.median(times), max(times)))
    lines = [
        "# Command-line latency (`make bench-cli`)",
        "",
        f"Machine: {meta.cpu_name()} ({os.cpu_count()} cores), Python {sys.version.split()[0]}, "
        f"Keras {meta._version('keras')}, backend {meta.configured_backend()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Each command a fresh process "
        f"(`python -m cnnlab ...`), median and worst of {args.repeats}; target {TARGET_S:.0f} s (issue 15).",
        "",
        "| Command | Median (s) | Worst (s) | Within target |",
        "|---|---:|---:|---|",
        *(
            f"| `{label}` | {med:.2f} | {worst:.2f} | {'yes' if worst < TARGET_S else 'no'} |"
            for label, med, worst in rows
        ),
        "",
        f"The first `cnnlab check` in an empty cache read the Keras signatures once: {cold:.1f} s "
        "(kept in .cache/keras_signatures/ for every later check under the same Keras version, backend and "
        "cnnlab layers).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if all(worst < TARGET_S for _, _, worst in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
