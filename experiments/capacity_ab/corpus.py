"""Build alternative IMDB id corpora from the raw reviews, saved ragged in $CAPACITY_AB_DIR/corpus_*.npz.
k2tok: Keras 1/2 Tokenizer default (text_to_word_sequence: lower(), filters '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
       -> ' ', split on ' '; apostrophes kept, '<br />' -> 'br'), ranks from train only.
k2tok_all: same tokeniser, ranks counted over train+test (as imdb.npz's index may have been)."""
import sys, tarfile, re, numpy as np
from collections import Counter
import os
from cnnlab.data import imdb as I

OUT = os.environ.get("CAPACITY_AB_DIR", ".")
FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
TR = str.maketrans(FILTERS, " " * len(FILTERS))
def k2tok(b):
    t = b.decode("utf-8").lower().translate(TR)
    return [w for w in t.split(" ") if w]

reviews = I.read_tarball(__import__("pathlib").Path(os.environ["CNNLAB_DATA_DIR"]) / "aclImdb_v1_labelled.tar.gz")
toks = {s: [k2tok(t) for t, _ in reviews[s]] for s in I.SPLITS}
labels = {s: np.array([l for _, l in reviews[s]], np.int8) for s in I.SPLITS}
for name, splits in (("k2tok", ["train"]), ("k2tok_all", ["train", "test"])):
    c = Counter()
    for s in splits:
        for d in toks[s]: c.update(d)
    ranked = [w for w, _ in sorted(c.items(), key=lambda kv: -kv[1])]  # stable: first-seen order on ties
    index = {w: r + 3 for r, w in enumerate(ranked)}
    out = {}
    for s in I.SPLITS:
        docs = [[1] + [index.get(w, 2) for w in d] for d in toks[s]]
        lens = np.array([len(d) for d in docs])
        out[f"{s}_ids"] = np.concatenate([np.array(d, np.int32) for d in docs])
        out[f"{s}_offsets"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        out[f"{s}_labels"] = labels[s]
    np.savez(f"{OUT}/corpus_{name}.npz", **out)
    print(name, "top20:", ranked[:20], "vocab", len(ranked))
