"""The parent's side of `cnnlab reproduce`'s warm process: start `python -m cnnlab.batch.worker`, hand it one job at a
time, read its exit status from the control descriptor, and replace it after a failed job.

Reference: cnnlab/batch/worker.py (the child's side, which runs `cnnlab.cli.main`); the protocol is described there.
Trap: this module must not import the worker or the CLI: the batch (cnnlab.batch.reproduce) sits below the command
line, and the child is started by module name, so the import graph has no cycle through the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


class WarmProcess:
    """The parent's handle on one worker: started on first use, started again after it ends or dies."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._control = None

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cnnlab.batch.worker", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=self.env,
                pass_fds=(write_fd,),
                text=True,
            )
        finally:
            os.close(write_fd)
        self._control = os.fdopen(read_fd, "r")

    def run(self, argv: list[str], out: Path, err: Path, started=None) -> int:
        """Run one `cnnlab` job in the worker; its exit status, or the worker's (negative: a signal) if it died."""
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self._start()
        if started is not None:
            started(self.proc)
        try:
            self.proc.stdin.write(json.dumps({"argv": argv, "out": str(out), "err": str(err)}) + "\n")
            self.proc.stdin.flush()
            answer = self._control.readline()
        except BrokenPipeError:
            answer = ""
        if answer:
            code = int(json.loads(answer)["exit"])
            if code != 0:
                self.close()  # it ends itself after a failed job: wait for that, so the next job starts afresh
            return code
        code = self.proc.wait()  # it died during the job (killed, out of memory, a crash in native code)
        self.close()
        return code if code != 0 else 1

    def close(self) -> None:
        """End the worker (end of its input) and wait for it."""
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._control is not None:
            self._control.close()
        self.proc, self._control = None, None
