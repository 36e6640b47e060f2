"""`cnnlab arith`: the calculators on the command line, and results/arith.md with every worked example.

Reference: lectures 001, 002 and 004 (see cnnlab/lectures/arith.py for each formula's source).
Trap: grids on the command line are rows separated by ';' and numbers by spaces or commas; a malformed grid
is a one-line error, not a numpy traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab import paths
from cnnlab.config.experiment import Ctx, experiment_names, load
from cnnlab.errors import CnnlabError
from cnnlab.lectures import arith
from cnnlab.models import params
from cnnlab.models.stack import build_model, needs_data
from cnnlab.store.files import atomic_write


def parse_grid(text: str, what: str) -> np.ndarray:
    """'2 4 8; 9 3 4' → a 2-D float32 array."""
    try:
        rows = [[float(v) for v in row.replace(",", " ").split()] for row in text.strip().split(";") if row.strip()]
    except ValueError as exc:
        raise CnnlabError(f"{what}: expected numbers, rows separated by ';', received {text!r} ({exc})") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise CnnlabError(
            f"{what}: expected a rectangular grid (rows of equal length separated by ';'), received {text!r}"
        )
    return np.array(rows, dtype="float32")


def grid_text(grid: np.ndarray) -> str:
    cells = [[f"{v:g}" for v in row] for row in np.asarray(grid)]
    width = max(len(c) for row in cells for c in row)
    return "\n".join("  ".join(c.rjust(width) for c in row) for row in cells)


def md_grid(grid: np.ndarray) -> list[str]:
    grid = np.asarray(grid)
    lines = ["| " + " | ".join(" " for _ in range(grid.shape[1])) + " |", "|" + "---:|" * grid.shape[1]]
    return lines + ["| " + " | ".join(f"{v:g}" for v in row) + " |" for row in grid]


def size_lines(n: int, kernel: int, stride: int, padding: str, dilation: int) -> list[str]:
    """Keras's answer and the slides' formulas for one layer."""
    out = arith.output_size(n, kernel, stride, padding, dilation)
    lines = [
        f"Keras ({padding}): n_out = {out}" + ("   (the layer does not fit: output would be empty)" if out < 1 else "")
    ]
    if dilation == 1:
        before, after = arith.same_padding(n, kernel, stride) if padding == "same" else (0, 0)
        if before == after:
            p = before
            l1, l4 = arith.lecture_001_size(n, kernel, stride, p), arith.lecture_004_size(n, kernel, stride, p)
            lines.append(
                f"lecture 001: ceil((n + 2p - k) / s) + 1 = ceil(({n} + {2 * p} - {kernel}) / {stride}) + 1 = {l1}"
                + ("" if l1 == out else "   ≠ Keras, which rounds down")
            )
            lines.append(
                f"lecture 004: (n - k + 2p) / s + 1 = ({n} - {kernel} + {2 * p}) / {stride} + 1 = {l4:g}"
                + ("" if l4 == out else "   ≠ Keras: not a whole number, Keras rounds down")
            )
        else:
            lines.append(
                f"'same' pads {before} before and {after} after (asymmetric): the slides' symmetric p does not apply"
            )
    else:
        lines.append(f"dilation {dilation}: effective kernel {dilation * (kernel - 1) + 1}")
    return lines


def size_grid_markdown() -> list[str]:
    """Where the slides' formulas and Keras disagree, over a small grid of cases."""
    lines = [
        "| n | k | s | p | Keras 'valid' after padding p | lecture 001 (ceil) | lecture 004 (no rounding) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, k, s, p in [
        (5, 3, 2, 1),
        (28, 3, 1, 0),
        (13, 2, 2, 0),
        (11, 2, 2, 0),
        (227, 11, 4, 0),
        (224, 11, 4, 2),
        (27, 3, 2, 0),
        (55, 3, 2, 0),
        (7, 3, 2, 0),
        (6, 3, 2, 0),
    ]:
        keras_n = arith.keras_output_size_with_pad(n, k, s, p)
        l1, l4 = arith.lecture_001_size(n, k, s, p), arith.lecture_004_size(n, k, s, p)
        mark = lambda v, keras_n=keras_n: f"{v:g}" if v == keras_n else f"**{v:g}**"  # noqa: E731
        lines.append(f"| {n} | {k} | {s} | {p} | {keras_n} | {mark(l1)} | {mark(l4)} |")
    return lines


def report(out: Path) -> Path:
    """Write results/arith.md (and the Sobel picture beside it) from the calculators."""
    from cnnlab.report import plots  # matplotlib

    out.parent.mkdir(parents=True, exist_ok=True)
    pool = arith.maxpool_backprop(arith.LECTURE_001_GRID, 3, 1, arith.LECTURE_001_UPSTREAM)
    (response,) = arith.convolve(arith.LECTURE_002_FEATURE_MAP, [arith.LECTURE_002_X_KERNEL])
    image = arith.demo_image()
    gx, gy, g = arith.sobel(image)
    sobel_png = out.parent / "arith_sobel.png"
    atomic_write(
        sobel_png,
        plots.panels(
            [image, gx, gy, g],
            ["X", "G_x = W_x * X", "G_y = W_y * X", "G = sqrt(G_x² + G_y²)"],
            "Sobel filters (lecture 004)",
        ),
    )
    import keras

    md = [
        "# The lectures' calculators",
        "",
        f"Generated by `cnnlab arith report` (Keras {keras.__version__}, backend {keras.backend.backend()}).",
        "",
        "## Output size (lectures 001 and 004 vs Keras)",
        "",
        "Keras computes `(n + 2p - k) // s + 1` for 'valid' (a floor) and `ceil(n / s)` for 'same'. Lecture 001 "
        "writes a ceiling, lecture 004 no rounding; both agree with Keras exactly when s divides n + 2p - k. "
        "Bold: where a slide's formula differs from what Keras builds.",
        "",
    ] + size_grid_markdown()
    md += [
        "",
        "## Receptive field and parameter formula of every layer",
        "",
        "Receptive field: size r and jump j on the input, r += (k_eff - 1) · j and j *= s per layer "
        "(k_eff = d · (k - 1) + 1 with dilation d). Formula: filters × (k_h × k_w × input channels) + biases; "
        "dense: inputs × units + units. Both columns are also in every run's params.md.",
        "",
    ]
    for name in experiment_names():
        exp = load(name)
        if needs_data(exp.config.model):  # sized by its dataset's vocabulary: `cnnlab params NAME` loads it
            continue
        table = params.table(build_model(exp.config.model, name, Ctx(str(exp.path))))
        md += [
            f"### {name}",
            "",
            "| Layer (type) | Output Shape | Param # (Keras) | Lecture formula | Receptive field |",
            "|---|---|---:|---|---|",
        ]
        md += [
            f"| {r.name} ({r.type}) | {params.shape_text(r.output_shape)} | {r.params:,} | "
            f"{r.formula or '–'}{'' if r.formula_params in (None, r.params) else ' ≠ Keras'} | {r.field} |"
            for r in table.rows
        ]
        md.append("")
    md += ["## Max-pool backprop (lecture 001: 3×3 pool, stride 1)", "", "Input:", ""] + md_grid(arith.LECTURE_001_GRID)
    md += ["", "Forward maxima:", ""] + md_grid(pool.forward)
    md += ["", "Upstream gradients:", ""] + md_grid(arith.LECTURE_001_UPSTREAM)
    md += [
        "",
        "Gradient routed to the input (autodiff through `keras.layers.MaxPooling2D`; every winner receives "
        "the sum of the gradients of the windows it wins):",
        "",
    ] + md_grid(pool.autodiff)
    md += [
        "",
        f"Direct computation agrees: {bool(np.array_equal(pool.autodiff, pool.direct))}.",
        "",
        "## Convolution with the 'X' kernel (lecture 002)",
        "",
        "Feature map:",
        "",
    ]
    md += md_grid(arith.LECTURE_002_FEATURE_MAP) + ["", "Kernel:", ""] + md_grid(arith.LECTURE_002_X_KERNEL)
    md += ["", "Response map (Keras Conv2D with these fixed weights, 'valid'):", ""] + md_grid(response)
    md += ["", "## Sobel filters (lecture 004)", "", f"![Sobel]({sobel_png.name})", ""]
    atomic_write(out, "\n".join(md) + "\n")
    return out


def add_parser(sub) -> None:
    """The `cnnlab arith` subcommands."""
    p = sub.add_parser("arith", help="the lectures' calculators: output size, max-pool backprop, convolutions, report")
    arith_sub = p.add_subparsers(dest="arith_command", required=True, metavar="CALCULATOR")
    sp = arith_sub.add_parser("size", help="output size of a convolution or pooling layer, Keras vs the slides")
    sp.add_argument("n", type=int, help="input size along one axis")
    sp.add_argument("kernel", type=int)
    sp.add_argument("--stride", type=int, default=1)
    sp.add_argument("--padding", choices=["valid", "same", "causal"], default="valid")
    sp.add_argument("--dilation", type=int, default=1)
    sp.set_defaults(func=_cmd_size)
    sp = arith_sub.add_parser(
        "maxpool-backprop", help="forward maxima and routed gradients (lecture 001's example without arguments)"
    )
    sp.add_argument("--grid", help="input rows separated by ';' (default: lecture 001's 5×5)")
    sp.add_argument("--pool", type=int, default=3)
    sp.add_argument("--stride", type=int, default=1)
    sp.add_argument("--upstream", help="upstream gradient rows separated by ';' (default: lecture 001's)")
    sp.set_defaults(func=_cmd_maxpool)
    sp = arith_sub.add_parser("convolve", help="lecture 002's feature map convolved with the 'X' kernel")
    sp.set_defaults(func=_cmd_convolve)
    sp = arith_sub.add_parser("report", help="write results/arith.md with every calculator's worked example")
    sp.add_argument("--out", default=None, help="default: <results dir>/arith.md")
    sp.set_defaults(func=_cmd_report)


def _cmd_size(args) -> int:
    for name, v in (("n", args.n), ("kernel", args.kernel), ("--stride", args.stride), ("--dilation", args.dilation)):
        if v < 1:
            raise CnnlabError(f"{name}: expected a positive integer, received {v}")
    print("\n".join(size_lines(args.n, args.kernel, args.stride, args.padding, args.dilation)))
    return 0


def _cmd_maxpool(args) -> int:
    grid = parse_grid(args.grid, "--grid") if args.grid else arith.LECTURE_001_GRID
    if args.pool < 1 or args.stride < 1 or args.pool > min(grid.shape):
        raise CnnlabError(
            f"--pool/--stride: expected 1 <= pool <= {min(grid.shape)} and stride >= 1, received "
            f"pool {args.pool}, stride {args.stride}"
        )
    n_out = [arith.output_size(d, args.pool, args.stride) for d in grid.shape]
    if args.upstream:
        upstream = parse_grid(args.upstream, "--upstream")
    elif args.grid is None and (args.pool, args.stride) == (3, 1):
        upstream = arith.LECTURE_001_UPSTREAM
    else:
        upstream = np.ones(n_out, dtype="float32")
    r = arith.maxpool_backprop(grid, args.pool, args.stride, upstream)
    print(f"Input ({grid.shape[0]}×{grid.shape[1]}), max pool {args.pool}×{args.pool}, stride {args.stride}:")
    print(grid_text(grid))
    print("\nForward maxima:")
    print(grid_text(r.forward))
    print("\nUpstream gradients:")
    print(grid_text(upstream))
    print("\nGradient routed to the input (autodiff through keras.layers.MaxPooling2D):")
    print(grid_text(r.autodiff))
    print(
        f"\nDirect computation (each window's winner receives its gradient, summed): "
        f"{'agrees' if np.array_equal(r.autodiff, r.direct) else 'DIFFERS (ties?)'}"
    )
    return 0


def _cmd_convolve(args) -> int:
    (response,) = arith.convolve(arith.LECTURE_002_FEATURE_MAP, [arith.LECTURE_002_X_KERNEL])
    print("Feature map:\n" + grid_text(arith.LECTURE_002_FEATURE_MAP))
    print("\nKernel:\n" + grid_text(arith.LECTURE_002_X_KERNEL))
    print("\nResponse map (Keras Conv2D, fixed weights, 'valid'):\n" + grid_text(response))
    return 0


def _cmd_report(args) -> int:
    out = report(Path(args.out) if args.out else paths.results_root(args) / "arith.md")
    print(f"written: {out}")
    return 0
