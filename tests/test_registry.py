"""Registries (cnnlab/registry.py): entries registered where they are defined, lookups that suggest a name."""

from __future__ import annotations

import pytest

from cnnlab.config.schema import Ctx
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.registry import Registry


def test_register_as_decorator_or_with_an_entry_and_refuse_a_second_entry_under_one_name():
    reg = Registry("builder")

    @reg.register
    def small(): ...

    @reg.register("big_one")
    def big(): ...

    entry = reg.register("table", {"rows": 3})
    assert small.__name__ == "small" and entry == {"rows": 3}  # returned unchanged
    assert reg.names() == ["big_one", "small", "table"] and reg["big_one"] is big and len(reg) == 3
    assert reg.register("small", small) is small  # the same object again (a module imported twice) is harmless
    with pytest.raises(ValueError, match="builder 'small' is registered twice"):
        reg.register("small", big)


def test_lookup_names_the_nearest_entry_through_the_config_or_alone():
    reg = Registry("dataset")
    for name in ("mnist", "imdb", "cats_dogs"):
        reg.register(name, name.upper())
    assert reg.lookup("imdb") == "IMDB"
    with pytest.raises(ConfigError) as err:
        reg.lookup("mnsit", Ctx("configs/x.yaml"), "data.dataset")
    assert str(err.value) == (
        "configs/x.yaml: data.dataset: unknown dataset 'mnsit' (did you mean 'mnist'?); "
        "known datasets: cats_dogs, imdb, mnist"
    )
    with pytest.raises(CnnlabError, match=r"^unknown dataset 'svhn'; known datasets: cats_dogs, imdb, mnist$"):
        reg.lookup("svhn")


def test_every_package_registers_its_own_entries():
    from cnnlab import data
    from cnnlab.models import blocks, keras2, row_lazy
    from cnnlab.models import stack as models

    # 3 datasets of the book + Kim's 7 sentence sets = 10
    assert data.DATASETS.names() == ["cats_dogs", "cr", "imdb", "mnist", "mpqa", "mr", "sst1", "sst2", "subj", "trec"]
    assert data.DATASETS["sst2"].options is data.DATASETS["mr"].options and data.DATASETS["mr"].cross_validation
    assert models.MODELS.names() == ["dense_classifier", "kim_cnn", "simple_convnet"]
    assert blocks.LAYERS.names() == ["ImageNetPreprocessing", "RandomAffine"] and blocks.BLOCKS.names() == ["VGG16"]
    assert keras2.OPTIMIZERS.names() == ["AdadeltaDense", "AdadeltaRowLazy", "RMSpropKeras2"]
    assert row_lazy.OPTIMIZERS is keras2.OPTIMIZERS
    assert keras2.METRICS.names() == ["BinaryAccuracyKeras2"]


def test_a_test_may_put_an_entry_in_and_take_it_out_again():
    reg = Registry("dataset")
    reg.register("mnist", "MNIST")
    reg["tiny"] = "TINY"  # replaces freely, as monkeypatch.setitem does
    assert reg.lookup("tiny") == "TINY" and reg.pop("tiny") == "TINY" and reg.names() == ["mnist"]
