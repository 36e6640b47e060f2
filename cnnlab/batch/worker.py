"""A warm process for `cnnlab reproduce`: it runs `cnnlab run` jobs one after another in itself, so that a batch
pays Python + TensorFlow + Keras start-up (about 5 s on 2 cores) once, not once per run.

Reference: issue 5 (the quick suite, 65 runs, within 15 minutes on 2 cores); `cnnlab reproduce --isolate` keeps
one fresh process per run.
Trap: Keras and the backends keep global state between runs in one process. The runner resets what it sets
(seed, dtype policy, distribution), this loop clears the Keras session after every job, and a job that does not
exit 0 ends the process, so that whatever it left half-done never reaches the next job (a fresh process takes
over). TensorFlow's op-determinism switch cannot be turned off again: a later `deterministic: false` run in the
same process says so in its metrics.json.

Protocol: the parent writes one JSON line per job on the worker's stdin, {"argv": [...], "out": path, "err":
path}; the worker points its file descriptors 1 and 2 at those files (so TensorFlow's C++ messages land there
too), runs `cnnlab.cli.main(argv)` and answers {"exit": code} on the control descriptor it was given.
End of stdin ends the worker.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback

from cnnlab.quiet import redirected
from cnnlab.store.meta import RUNS_BEFORE  # set for each job: how many runs this process made before it


def run_one(argv: list[str]) -> int:
    """`cnnlab ARGV` in this process; an unexpected exception is printed as a traceback and is exit status 1."""
    from cnnlab.cli import main

    sys.argv = ["cnnlab", *argv]  # what metrics.json records as the run's command
    try:
        return int(main(argv) or 0)
    except SystemExit as exc:  # argparse's own errors
        return exc.code if isinstance(exc.code, int) else 1
    except Exception:  # noqa: BLE001  (reported like a crashed child: its traceback on its stderr)
        traceback.print_exc()
        return 1


def serve(control_fd: int) -> int:
    """The worker's loop: one job per line of stdin until end of input, or until a job fails."""
    import keras

    done = 0
    with os.fdopen(control_fd, "w", buffering=1) as control:
        for line in sys.stdin:
            job = json.loads(line)
            os.environ[RUNS_BEFORE] = str(done)
            with redirected(job["out"], job["err"]):
                code = run_one(job["argv"])
                keras.backend.clear_session(free_memory=True)
                gc.collect()
            done += 1
            control.write(json.dumps({"exit": code}) + "\n")
            if code != 0:
                return 0  # a failed job may leave state behind: the next job gets a fresh process
    return 0


if __name__ == "__main__":
    from cnnlab import quiet

    quiet.install()
    raise SystemExit(serve(int(sys.argv[1])))
