"""The `cnnlab` command: list, run, params, check, compare.

Reference: the README's commands; `python -m cnnlab` is the same program.
Trap: user mistakes (CnnlabError) print one line and exit 2; anything else is a cnnlab bug and keeps its
traceback. Keras (and TensorFlow) are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import re
import signal
import sys
import threading
from pathlib import Path

from cnnlab import data as data_mod
from cnnlab import paths, quiet, stop
from cnnlab.batch import bundle, equivalence, local_engine, ray_engine, reproduce
from cnnlab.config.experiment import Ctx, description_of, experiment_refs, load, variant_refs
from cnnlab.errors import CnnlabError
from cnnlab.lectures import arith_report, zoo
from cnnlab.models import params
from cnnlab.models.stack import build_model, needs_data
from cnnlab.report import ab, precision
from cnnlab.report.compare import compare_sets, run_verdicts, write_summary
from cnnlab.store.files import atomic_write
from cnnlab.train import phases


def _results_root(args) -> Path:
    return paths.results_root(args)


def cmd_list(args) -> int:
    """Experiments with their one-line descriptions."""
    refs = list(experiment_refs().values())
    width = max(map(len, refs), default=0)
    for ref in refs:
        print(f"{ref:<{width}}  {description_of(ref)}")
    return 0


def cmd_check(args) -> int:
    """Validate configs (all, or the given ones) in both profiles: the schema, and every Keras class and argument
    name by its signature, without importing Keras; with --build, also build each model (without data) and
    check its phases' layer names, as `cnnlab run` does before training."""
    named = [a for a in args.experiments if "=" not in a]
    refs = [r for a in named for r in (variant_refs(a) if ":" not in a else [a])] or list(experiment_refs().values())
    overrides = [a for a in args.experiments if "=" in a]
    for ref in refs:
        for profile in ("full", "quick"):
            exp = load(ref, overrides, profile)
            if not args.build:
                continue
            if needs_data(exp.config.model):  # built from the dataset's vocabulary: `cnnlab params` shows it
                continue
            model = build_model(exp.config.model, exp.config.name, Ctx(str(exp.path)))
            phases.check(model, exp.config.train.phases, Ctx(str(exp.path)))
        print(f"ok  {ref}")
    return 0


def cmd_params(args) -> int:
    """The parameter table of a config's model, built without data or training."""
    exp = load(args.experiment, args.overrides, args.profile)
    data = None
    if needs_data(exp.config.model):  # e.g. Kim's CNN: the vocabulary size and vectors come from the dataset
        cfg = exp.config
        data = data_mod.load(
            cfg.data, data_mod.resolve_data_dir(args.data_dir, cfg.data.data_dir, exp.path), cfg.seed
        ).extras
    model = build_model(exp.config.model, exp.config.name, Ctx(str(exp.path)), data=data)
    print(params.to_text(params.table(model, exp.config.report.dense_head_what_if), args.extended), end="")
    return 0


def cmd_run(args) -> int:
    """Train, evaluate and write results/<experiment>/<run>/."""
    if getattr(args, "precision", None):
        args.overrides = [*args.overrides, f"train.precision={args.precision}"]
    combos = sweep_overrides(args.sweep)
    exps = [load(args.experiment, [*args.overrides, *combo], args.profile) for combo in combos]  # all checked first
    from cnnlab.train import runner  # Keras

    for i, (exp, combo) in enumerate(zip(exps, combos), start=1):
        if len(combos) > 1:
            print(f"== {args.experiment}: sweep {i}/{len(combos)}: {' '.join(combo)}", flush=True)
        result = runner.run(exp, _results_root(args), data_dir=args.data_dir, verbose=args.verbose)
        for line in run_verdicts(result.run_dir, result.metrics, exp.profile, exp.overrides):
            print(line, flush=True)
    if not args.no_summary:
        write_summary(_results_root(args))
    return 0


def sweep_overrides(sweeps: list[str]) -> list[list[str]]:
    """['seed=1,2', 'data.options.fold=0..1'] → every combination as override lists; [] → [[]]."""

    axes = []
    for item in sweeps:
        if "=" not in item or not item.split("=", 1)[1].strip():
            raise CnnlabError(f"command line: --sweep {item}: expected KEY=V1,V2,... or KEY=FIRST..LAST")
        key, text = (part.strip() for part in item.split("=", 1))
        if ".." in text and "," not in text:
            lo, _, hi = text.partition("..")
            if not (lo.strip().lstrip("-").isdigit() and hi.strip().lstrip("-").isdigit()) or int(lo) > int(hi):
                raise CnnlabError(
                    f"command line: --sweep {item}: a range is FIRST..LAST with integers, "
                    f"FIRST <= LAST, received '{text}'"
                )
            values = [str(v) for v in range(int(lo), int(hi) + 1)]
        else:
            values = [v.strip() for v in text.split(",") if v.strip()]
        axes.append([f"{key}={v}" for v in values])
    return [list(c) for c in itertools.product(*axes)] if axes else [[]]


def cmd_compare(args) -> int:
    """Regenerate results/summary.csv and results/summary.md; with two result folders, set them side by side."""
    if args.sets:
        if len(args.sets) != 2:
            raise CnnlabError(f"command line: compare takes two result folders (A B), received {len(args.sets)}")
        problems: list[str] = []
        curves = Path(args.out).with_name(Path(args.out).stem + "_curves") if args.out else None
        text = compare_sets(Path(args.sets[0]), Path(args.sets[1]), problems=problems, curves_dir=curves)
        if args.out:
            atomic_write(Path(args.out), text)
        print(text, end="")
        if args.check and problems:
            print(
                f"cnnlab: compare --check: {len(problems)} difference(s) beyond the runs' spread or between "
                f"different settings: " + "; ".join(problems),
                file=sys.stderr,
            )
            return 1
        return 0

    csv_path, md_path = write_summary(_results_root(args))
    print(md_path.read_text(), end="")
    print(f"\nwritten: {csv_path}, {md_path}")
    return 0


def cmd_ab(args) -> int:
    """Seed-matched A/B of one metric between two result folders (an experiment and its variant): pairs,
    mean difference and its paired 95% interval."""
    root = _results_root(args)
    for name in (args.a, args.b):
        if not (root / name).is_dir():
            raise CnnlabError(
                f"{root / name}: no such results folder (names are as in results/, e.g. imdb_conv1d_keras3_rmsprop)"
            )
    result = ab.ab(root, args.a, args.b, args.metric, args.statistic)
    if not result["n"] and not result["dead"]:
        raise CnnlabError(f"{args.metric}: no seed of {args.a} and {args.b} was measured on both sides")
    print(ab.markdown(result), end="")
    return 0


def cmd_precision(args) -> int:
    """The precision study: each family's headline metric in float32 and mixed_bfloat16 over its seeds, the
    difference with its 95% Welch interval and the verdict → results/precision.md and precision.csv."""
    csv, md = precision.write(_results_root(args))
    print(md.read_text(encoding="utf-8"), end="")
    print(f"written: {md}, {csv}")
    return 0


def cmd_zoo(args) -> int:
    """Parameter table of the classic architectures (LeNet-5 to MobileNet) → results/zoo.md and zoo.csv."""
    out = zoo.report(_results_root(args) / "zoo.md")
    print(out.read_text(), end="")
    print(f"\nwritten: {out}, {out.with_suffix('.csv')}")
    return 0


def cmd_explain(args) -> int:
    """Saliency, Grad-CAM, activations and filter patterns of a trained run → results/<exp>/<run>/explain/."""
    from cnnlab.lectures.explain_run import run_explain  # matplotlib, numpy

    files = run_explain(
        args.run,
        _results_root(args),
        image=args.image,
        index=args.index,
        class_index=args.cls,
        n_filters=args.filters,
        steps=args.steps,
        data_dir=args.data_dir,
        max_layers=args.max_layers,
    )
    print("written:\n  " + "\n  ".join(str(f) for f in files))
    return 0


def cmd_vouch(args) -> int:
    """Measure that today's code computes what COMMIT's did (seeded quick probes, bit-identical) and let the
    finished runs of COMMIT's code count as today's for `reproduce` (results/code_equivalence.json)."""
    probes = args.probes or list(equivalence.DEFAULT_PROBES)
    probes = reproduce.select(experiment_refs(), probes)  # globs expanded; an unknown name: the nearest one
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    equivalence.vouch(args.commit, probes, _results_root(args), data_dir, args.backend)
    return 0


class Parser(argparse.ArgumentParser):
    """argparse's parser, its mistakes in cnnlab's form: one line on stderr and exit status 2. Trap: argparse
    prints the whole usage block before its message, and a sub-command's parser is of its parent's class, so
    this one class covers every sub-command (those that reproduce.py and others add too)."""

    def error(self, message: str):
        where = self.prog.removeprefix("cnnlab").strip()
        hint = f"cnnlab {where} --help" if where else "cnnlab --help"
        self.exit(2, f"cnnlab: error: {where + ': ' if where else ''}{message} (see {hint})\n")


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="cnnlab",
        description="Reproduce the classic convnet lecture experiments and check them against the published numbers.",
    )
    p.add_argument("--results-dir", help="where results go (default: $CNNLAB_RESULTS_DIR or ./results)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def exp_args(sp, data=False):
        sp.add_argument("experiment", help="an experiment name (see `cnnlab list`) or a path to a .yaml config")
        sp.add_argument(
            "overrides",
            nargs="*",
            metavar="key=value",
            help="config overrides, validated like the file (e.g. train.epochs=1)",
        )
        sp.add_argument(
            "--profile",
            default="full",
            choices=["full", "quick"],
            help="full: the published settings (default); quick: the config's CPU smoke settings",
        )
        if data:
            sp.add_argument(
                "--data-dir",
                type=paths.existing_dir,
                help="local data directory (default: data.data_dir, then "
                "$CNNLAB_DATA_DIR, else download through Keras)",
            )

    sp = sub.add_parser("list", help=cmd_list.__doc__)
    sp.set_defaults(func=cmd_list)
    sp = sub.add_parser("run", help=cmd_run.__doc__)
    exp_args(sp, data=True)
    sp.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        default=None,
        help="Keras progress: 1 bar, 2 one line per epoch (default: 1 on a terminal, else 2)",
    )
    sp.add_argument("--no-summary", action="store_true", help="do not regenerate results/summary.* afterwards")
    sp.set_defaults(func=cmd_run)
    sp.add_argument(
        "--precision",
        choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"],
        help="train.precision for this run (float32: force full precision, e.g. for a bit-for-bit "
        "comparison; auto: bfloat16 where the machine computes it natively)",
    )
    sp.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="run once per value (several --sweep: every combination); a range as 0..9, e.g. "
        "--sweep seed=1,2,3 or --sweep data.options.fold=0..9 (compare reports mean ± std)",
    )
    sp = sub.add_parser("params", help=cmd_params.__doc__)
    exp_args(sp, data=True)
    sp.add_argument(
        "--extended",
        action="store_true",
        help="add the lecture's parameter formula and the receptive field of each layer",
    )
    sp.set_defaults(func=cmd_params)
    sp = sub.add_parser("check", help=cmd_check.__doc__)
    sp.add_argument(
        "experiments",
        nargs="*",
        metavar="EXP or key=value",
        help="names or paths (default: every config), and overrides to check with them",
    )
    sp.add_argument(
        "--build",
        action="store_true",
        help="also build every model (imports Keras; seconds, "
        "not a fraction of one) and check the layer names its training phases (un)freeze",
    )
    sp.set_defaults(func=cmd_check)
    sp = sub.add_parser("compare", help=cmd_compare.__doc__)
    sp.add_argument(
        "sets",
        nargs="*",
        metavar="RESULTS",
        help="two result folders A B to set side by side "
        "(two machines, backends, Keras versions); none: regenerate the summary",
    )
    sp.add_argument(
        "--out",
        help="also write the A/B comparison to this Markdown file (and A's and B's curves "
        "overlaid per experiment beside it, in <name>_curves/)",
    )
    sp.add_argument(
        "--check",
        action="store_true",
        help="with A B: exit 1 when a difference exceeds the runs' "
        "spread or the two sides ran different settings (a CI gate)",
    )
    sp.set_defaults(func=cmd_compare)
    sp = sub.add_parser("ab", help=cmd_ab.__doc__)
    sp.add_argument("a", help="results name of side A (an experiment, or a variant as name_variant)")
    sp.add_argument("b", help="results name of side B")
    sp.add_argument("--metric", default="val_accuracy", help="a measured metric (default val_accuracy)")
    sp.add_argument(
        "--statistic",
        choices=["best", "last", "mean_last_10"],
        default=None,
        help="how an epoch series becomes one number (default: best for val_, last for train_)",
    )
    sp.set_defaults(func=cmd_ab)
    sp = sub.add_parser("precision", help=cmd_precision.__doc__)
    sp.set_defaults(func=cmd_precision)
    sp = sub.add_parser("explain", help=cmd_explain.__doc__)
    sp.add_argument("run", help="a run folder, or an experiment name (its newest complete run with a saved model)")
    sp.add_argument("--image", help="an image file to explain (default: a test image of the run's dataset)")
    sp.add_argument("--index", type=int, default=0, help="which test image (default 0)")
    sp.add_argument("--class", dest="cls", type=int, default=None, help="class to explain (default: predicted)")
    sp.add_argument("--filters", type=int, default=16, help="filter patterns per conv layer (default 16)")
    sp.add_argument("--steps", type=int, default=30, help="gradient-ascent steps per filter pattern (default 30)")
    sp.add_argument(
        "--max-layers",
        type=int,
        default=4,
        help="conv layers that get filter patterns, spread from first to last (default 4)",
    )
    sp.add_argument("--data-dir", type=paths.existing_dir, help="local data directory, as for `cnnlab run`")
    sp.set_defaults(func=cmd_explain)
    sp = sub.add_parser("zoo", help=cmd_zoo.__doc__)
    sp.set_defaults(func=cmd_zoo)
    sp = sub.add_parser("vouch", help=cmd_vouch.__doc__)
    sp.add_argument("--from", dest="commit", required=True, help="the earlier code: a commit, tag or HEAD~N")
    sp.add_argument(
        "probes",
        nargs="*",
        metavar="EXP",
        help="experiments run in the quick profile on both sides (default: one per dataset family and builder: "
        "mnist imdb_conv1d_faithful cats_dogs_augmented vgg16_features kim_mr:multichannel kim_sst2)",
    )
    sp.add_argument("--backend", choices=["tensorflow", "jax", "torch"], help="default: KERAS_BACKEND's")
    sp.add_argument("--data-dir", type=paths.existing_dir, help="local data directory, as for `cnnlab run`")
    sp.set_defaults(func=cmd_vouch)
    arith_report.add_parser(sub)
    reproduce.add_parser(sub)
    sub.choices["reproduce"].set_defaults(func=cmd_reproduce)
    bundle.add_parser(sub)
    literal_percent(p)
    return p


def literal_percent(p: argparse.ArgumentParser) -> None:
    """Every help text of `p` and of its sub-commands, recursively, with a plain '%' doubled. Trap: argparse
    expands help strings with the % operator, so a docstring used as a command's help ("its paired 95% interval")
    made `cnnlab --help` a TypeError traceback; no help here uses argparse's %(default)s, and a '%(' is left be."""

    def literal(text):
        return re.sub(r"%(?!\()", "%%", text.replace("%%", "%")) if isinstance(text, str) else text

    for action in p._actions:
        action.help = literal(action.help)
        for line in getattr(action, "_choices_actions", []):  # a sub-command's line in its parent's help
            line.help = literal(line.help)
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share one parser
                literal_percent(child)


def cmd_reproduce(args) -> int:
    """`cnnlab reproduce`: cnnlab.batch.reproduce's, on cnnlab.batch.ray_engine's Ray engine, or with --engine local
    on local_engine's child processes (handed in here: the batch layer cannot import the engines, which run the
    experiments)."""
    if getattr(args, "engine", "ray") == "local":
        return reproduce.cmd_reproduce(args, local_engine.LocalEngine)
    return reproduce.cmd_reproduce(args, ray_factory)


def ray_factory(**kwargs):
    """RayEngine(**kwargs), or one line when Ray is not installed (a machine with no registry: the GPU bundle)."""
    if importlib.util.find_spec("ray") is None:
        raise CnnlabError("reproduce: Ray is not installed here (pip install ray), or run with --engine local")
    return ray_engine.RayEngine(**kwargs)


Terminated = stop.Terminated  # SIGTERM handled as Ctrl-C (cnnlab.stop)


def _terminate(signum, frame):
    stop.request(Terminated)  # kept, in case this raise lands in code where Python ignores exceptions
    raise Terminated()


def _stop_on_sigterm():
    """Install `_terminate` for SIGTERM in the main thread, where the default would kill the process mid-write;
    returns the previous handler for main() to put back (main also runs inside tests and the warm worker)."""

    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGTERM, _terminate)
    except (ValueError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    quiet.install()  # TensorFlow's C++ start-up lines (CUDA probe, absl notice), before anything imports it
    previous = _stop_on_sigterm()
    try:
        return _main(argv)
    except BrokenPipeError:  # `cnnlab list | head`: the reader has gone; no traceback, the shell's status for it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush of stdout is quiet
        return 128 + signal.SIGPIPE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    p = parser()
    try:
        args, extra = p.parse_known_args(argv)
        # key=value overrides may also come after options (`run mnist --profile quick train.epochs=1`)
        if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        elif extra:
            p.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as done:  # --help (0) or a mistake on the command line (2, its one line printed)
        return done.code if isinstance(done.code, int) else 2
    try:
        paths.check_environment(args)
        return args.func(args)
    except CnnlabError as err:
        print(f"cnnlab: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt as interrupt:
        stop.clear()
        print(f"cnnlab: interrupted{' (SIGTERM)' if isinstance(interrupt, Terminated) else ''}", file=sys.stderr)
        return 130
