"""Markdown views of pandas DataFrames: every table in the report is a DataFrame of its cells, drawn here.

Reference: the design card (tables are pandas DataFrames; formatting only in the Markdown views); timm's
results/*.csv beside its rendered tables.
Trap: a cell's text is the caller's formatting of a raw number (the CSV keeps the number); a '|' or a newline
inside a cell would break GitHub's table, so they are escaped here, once, for every table.
"""

from __future__ import annotations

from collections.abc import Sequence


def cell(value) -> str:
    """One cell's text: None as '–', anything else as str, with '|' escaped and newlines as spaces."""
    text = "–" if value is None else str(value)
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown(frame, align: Sequence[str] | str = "") -> list[str]:
    """`frame` as the lines of a GitHub table, its columns as the header; `align` per column: 'l' or 'r'
    (default 'l')."""
    headers = [str(c) for c in frame.columns]
    align = list(align) + ["l"] * (len(headers) - len(align))
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False, name=None)]
    return lines
