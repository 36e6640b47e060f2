"""Kim's sentence tokenisers (his process_data.py, in Python 3), shared by the sentence sets and word2vec.

Reference: yoonkim/CNN_sentence process_data.py (`clean_str`, `clean_str_sst`); Kim (2014) §3.
Trap: `clean_str` keeps only A-Za-z0-9(),!?'` and splits clitics off; the IMDB reviews' "<br />" must go before
it (cnnlab/data/word2vec.py), or every review keeps "br" tokens.
"""

from __future__ import annotations

import re

_NOT_KEPT = re.compile(r"[^A-Za-z0-9(),!?'`]")
_SPACES = re.compile(r"\s{2,}")
_CLEAN_STEPS = (
    ("'s", " 's"),
    ("'ve", " 've"),
    ("n't", " n't"),
    ("'re", " 're"),
    ("'d", " 'd"),
    ("'ll", " 'll"),
    (",", " , "),
    ("!", " ! "),
    ("(", " ( "),
    (")", " ) "),
    ("?", " ? "),
)


def clean_str(string: str, lower: bool = True) -> str:
    """Kim's `clean_str`: every character but A-Za-z0-9(),!?'` becomes a space, clitics ('s 've n't 're 'd 'll)
    and , ! ( ) ? split off, spaces collapsed, lower-cased unless `lower` is false (his TREC=True).

    His Python 2 replacement " \\( " kept the backslash, so his tokens were "\\(" and "\\)"; here they are "(" and
    ")" (as in harvardnlp's Python 3 port), the same vocabulary size and words GloVe knows."""
    string = _NOT_KEPT.sub(" ", string)
    for old, new in _CLEAN_STEPS:
        string = string.replace(old, new)
    string = _SPACES.sub(" ", string).strip()
    return string.lower() if lower else string


def clean_str_sst(string: str) -> str:
    """Kim's `clean_str_sst`: the same character filter, no clitic splitting (the treebank is tokenised)."""
    return _SPACES.sub(" ", _NOT_KEPT.sub(" ", string)).strip().lower()


def tokenize(sentence: str, cleaning: str) -> list[str]:
    """Words of one sentence: 'kim', 'kim_cased', 'sst' (the dataset's cleaning) or 'whitespace' (as in the file)."""
    if cleaning == "kim":
        return clean_str(sentence).split()
    if cleaning == "kim_cased":
        return clean_str(sentence, lower=False).split()
    if cleaning == "sst":
        return clean_str_sst(sentence).split()
    return sentence.split()
