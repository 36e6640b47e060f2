"""The text models: lecture 002's IMDB Conv1D and dense family, Kim's (2014) CNN in its four variants."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cnnlab.config.experiment import load
from cnnlab.models.stack import build_model


def _count(ref: str) -> int:
    exp = load(ref)
    return build_model(exp.config.model, exp.config.name).count_params()


def test_imdb_conv1d_parameters_and_names():
    exp = load("imdb_conv1d")
    model = build_model(exp.config.model, exp.config.name)
    # Embedding 10,000×128 = 1,280,000; Conv1D 7×128×32+32 = 28,704; Conv1D 7×32×32+32 = 7,200; Dense 32+1 = 33
    assert model.count_params() == 1_280_000 + 28_704 + 7_200 + 33 == 1_315_937
    assert [layer.name for layer in model.layers] == [
        "embedding_1",
        "conv1d_1",
        "maxpooling1d_1",
        "conv1d_2",
        "globalmaxpooling1d_1",
        "dense_1",
    ]


def test_faithful_conv1d_differs_only_by_the_output_activation():
    fixed, faithful = load("imdb_conv1d").config, load("imdb_conv1d_faithful").config
    assert fixed.model.layers[:-1] == faithful.model.layers[:-1]
    assert dict(fixed.model.layers[-1].kwargs) == {"units": 1, "activation": "sigmoid"}
    assert dict(faithful.model.layers[-1].kwargs) == {"units": 1}  # linear: the slide's bug
    assert replace(fixed.train, precision="float32") == faithful.train and fixed.data == faithful.data
    # the one training difference: the faithful model keeps float32 (results/precision.md studied imdb_conv1d)
    assert (fixed.train.precision, faithful.train.precision) == ("auto", "float32")


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("imdb_capacity", 10_000 * 16 + 16 + 16 * 16 + 16 + 16 + 1),  # 160,305
        ("imdb_capacity:smaller", 10_000 * 4 + 4 + 4 * 4 + 4 + 4 + 1),  # 40,029
        ("imdb_capacity:bigger", 10_000 * 512 + 512 + 512 * 512 + 512 + 513),  # 5,383,681
        ("imdb_capacity:l2", 160_305),
        ("imdb_capacity:dropout", 160_305),
    ],
)
def test_capacity_family_parameters(ref, expected):
    assert _count(ref) == expected


def test_capacity_variants_change_one_thing_each():
    base = load("imdb_capacity").config
    for variant, params in [
        ("smaller", {"units": [4, 4]}),
        ("l2", {"units": [16, 16], "l2": 0.001}),
        ("dropout", {"units": [16, 16], "dropout": 0.5}),
    ]:
        cfg = load(f"imdb_capacity:{variant}").config
        assert cfg.name == f"imdb_capacity_{variant}"
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.model.params.items()} == params
        assert cfg.train == base.train and cfg.data == base.data


def test_dropout_and_l2_layers_are_where_the_lecture_puts_them():
    exp = load("imdb_capacity:dropout")
    names = [layer.name for layer in build_model(exp.config.model, exp.config.name).layers]
    assert names == ["dense_1", "dropout_1", "dense_2", "dropout_2", "dense_3"]
    exp = load("imdb_capacity:l2")
    model = build_model(exp.config.model, exp.config.name)
    assert [type(layer.kernel_regularizer).__name__ for layer in model.layers] == ["L2", "L2", "NoneType"]


def _kim(variant, vocab=50, dim=8, classes=2, **kw):
    from cnnlab.models.text_models import kim_cnn

    rng = np.random.default_rng(0)
    data = {
        "vocabulary": [f"w{i}" for i in range(vocab)],
        "num_classes": classes,
        "embeddings": None if variant == "rand" else rng.normal(size=(vocab, dim)).astype("float32"),
    }
    return kim_cnn((12,), data=data, variant=variant, embedding_dim=dim, feature_maps=4, **kw)


def test_kim_parameter_counts():
    V, d, m, C = 50, 8, 4, 2
    convs = sum(h * d * m + m for h in (3, 4, 5))  # (3+4+5)·8·4 + 3·4 = 396
    head = 3 * m * C + C  # 12·2 + 2 = 26
    assert _kim("rand").count_params() == V * d + convs + head == 822
    assert _kim("static").count_params() == 822
    multi = _kim("multichannel")  # two tables; each filter has weights per channel
    assert multi.count_params() == 2 * V * d + 2 * convs - 3 * m + head == 1_606  # one bias per filter
    shared = _kim("multichannel", multichannel_filters="shared")
    assert shared.count_params() == 2 * V * d + convs + head == 1_222


def test_kim_trainable_embeddings_per_variant():
    def trainable_tables(model):
        return sorted(layer.name for layer in model.layers if "embedding" in layer.name and layer.trainable)

    assert trainable_tables(_kim("rand")) == ["embedding_rand"]
    assert trainable_tables(_kim("static")) == []
    assert trainable_tables(_kim("non_static")) == ["embedding_non_static"]
    assert trainable_tables(_kim("multichannel")) == ["embedding_non_static"]


def test_multichannel_static_channel_stays_while_non_static_moves():
    import keras

    model = _kim("multichannel")
    model.compile(
        optimizer=keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-6),
        loss="sparse_categorical_crossentropy",
    )
    static0 = model.get_layer("embedding_static").get_weights()[0].copy()
    tuned0 = model.get_layer("embedding_non_static").get_weights()[0].copy()
    np.testing.assert_array_equal(static0, tuned0)  # both start from the same pretrained vectors
    x = np.random.default_rng(1).integers(1, 50, size=(16, 12)).astype("int32")
    y = np.random.default_rng(2).integers(0, 2, size=16)
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(model.get_layer("embedding_static").get_weights()[0], static0)
    assert np.abs(model.get_layer("embedding_non_static").get_weights()[0] - tuned0).max() > 0


def test_max_norm_is_applied_to_each_class_weight_vector():
    import keras

    model = _kim("rand", max_norm=3.0)
    dense = model.get_layer("softmax")
    kernel = dense.kernel
    kernel.assign(np.full(kernel.shape, 5.0, dtype="float32"))  # column norms 5·sqrt(12) ≈ 17.3 > 3
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy")
    model.train_on_batch(np.ones((2, 12), dtype="int32"), np.array([0, 1]))
    norms = np.linalg.norm(keras.ops.convert_to_numpy(dense.kernel), axis=0)
    np.testing.assert_allclose(norms, 3.0, rtol=1e-4)  # rescaled to s = 3 after the update
    assert norms.shape == (2,)  # one norm per class (column), as Kim's s


def test_kim_pretrained_variant_without_vectors_is_a_clear_error():
    from cnnlab.models.text_models import kim_cnn

    with pytest.raises(ValueError, match="data.options.vectors"):
        kim_cnn((12,), data={"vocabulary": ["a"] * 5, "num_classes": 2, "embeddings": None}, variant="static")


@pytest.mark.parametrize("variant", ["rand", "non_static"])
def test_the_padding_vector_stays_zero_while_embeddings_train(variant):
    import keras

    model = _kim(variant)
    table = model.get_layer(f"embedding_{variant}")
    assert not np.any(keras.ops.convert_to_numpy(table.embeddings)[0])  # row 0 (padding) starts at zero
    model.compile(
        optimizer=keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-6),
        loss="sparse_categorical_crossentropy",
    )
    x = np.zeros((8, 12), dtype="int32")
    x[:, 4:8] = np.random.default_rng(3).integers(1, 50, size=(8, 4))  # Kim's layout: zeros around the words
    before = keras.ops.convert_to_numpy(table.embeddings).copy()
    model.train_on_batch(x, np.arange(8) % 2)
    after = keras.ops.convert_to_numpy(table.embeddings)
    assert not np.any(after[0])  # still zero after an update
    assert np.abs(after[1:] - before[1:]).max() > 0  # the words' vectors moved


@pytest.mark.parametrize("variant", ["rand", "static", "multichannel"])
def test_kims_initialisation_or_keras(variant):
    # conv_net_classes.py: ReLU filters U[-0.01, 0.01], the softmax (LogisticRegression) weights zeros, biases
    # zeros; init=keras: Glorot-uniform, whose bound for the 3 × 8-input filters of 100 maps is √(6/(24 + 300)) ≈ 0.136
    import numpy as np

    from cnnlab.models.text_models import kim_cnn

    data = {"vocabulary": list(range(50)), "num_classes": 2, "embeddings": np.ones((50, 8), "float32")}
    kim = kim_cnn((20,), data=data, variant=variant, embedding_dim=8, init="kim")
    keras_init = kim_cnn((20,), data=data, variant=variant, embedding_dim=8, init="keras")
    conv = [w for layer in kim.layers if layer.name.startswith("conv1d_") for w in layer.get_weights()[:1]]
    assert conv and all(np.abs(w).max() <= 0.01 for w in conv)
    assert not kim.get_layer("softmax").get_weights()[0].any()
    glorot = [w for layer in keras_init.layers if layer.name.startswith("conv1d_") for w in layer.get_weights()[:1]]
    assert max(np.abs(w).max() for w in glorot) > 0.05 and keras_init.get_layer("softmax").get_weights()[0].any()
    # the embedding tables are the data's, whichever kernels: init never touches them
    emb = [layer for layer in kim.layers if layer.name.startswith("embedding_")][0].get_weights()[0]
    assert variant == "rand" or np.array_equal(emb[1:], data["embeddings"][1:])
