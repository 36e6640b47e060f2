"""A stop asked for by a signal, kept until a run acts on it.

Reference: issue 15 (SIGTERM, a scheduler's polite stop, handled as Ctrl-C is: the run keeps its `.partial`
folder and backup and resumes next time).
Trap: cli's SIGTERM handler raises `Terminated` in whatever Python code the main thread is running; when that is
a `__del__`, a weakref or GC callback, Python prints "Exception ignored in …" and carries on, and the run
finished as if no signal had come (found by the 20-pass check: 1 of 20 `make test` passes, exit 0 instead of
130). So the handler also records the stop here, and the runner's `StopCallback` raises it again at the next
batch; whoever acts on a stop clears it.
"""

from __future__ import annotations

import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler's or `kill`'s polite stop), handled as Ctrl-C is: a run keeps its `.partial`
    folder and backup and resumes next time, a batch stops its children and records the rest as interrupted."""


_pending: list[type[BaseException]] = []  # at most one: the stop not yet acted upon
_lock = threading.Lock()


def request(kind: type[BaseException] = Terminated) -> None:
    """Record a stop (called by the signal handler before it raises)."""
    with _lock:
        _pending[:] = [kind]


def pending() -> type[BaseException] | None:
    """The stop recorded and not yet acted upon, if any."""
    return _pending[0] if _pending else None


def clear() -> None:
    """The stop has been acted upon (the run was interrupted, or the command reported it)."""
    with _lock:
        _pending.clear()


def raise_if_requested() -> None:
    """Raise the recorded stop again, where an earlier raise may have been swallowed."""
    kind = pending()
    if kind is not None:
        raise kind()
