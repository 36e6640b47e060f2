"""User-facing errors: one line, exit status 2, never a traceback.

Trap: raise these only for mistakes a user can fix (a config key, a data file, a path);
a bug in cnnlab itself should still surface as a traceback so it gets reported.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class CnnlabError(Exception):
    """A problem the user can fix; `str(err)` is the whole one-line message."""

    exit_code = 2


class ConfigError(CnnlabError):
    """A config (or CLI override) problem at `file: key.path: message`."""

    def __init__(self, file: str, path: str, message: str):
        self.file, self.path, self.message = file, path, message
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {message}")


class DataError(CnnlabError):
    """A missing or malformed dataset file."""


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices`, or ''."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    """`text` without terminal colour codes (Keras colours its error messages)."""
    return _ANSI.sub("", text)


def one_line(exc: BaseException) -> str:
    """The informative first line of an exception's message (Keras wraps the real one in a preamble)."""
    lines = [ln.strip() for ln in strip_ansi(str(exc)).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Exception encountered when calling")] or lines
    return lines[0] if lines else type(exc).__name__
