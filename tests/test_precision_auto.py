"""train.precision: auto resolves by the machine (CPU flags, GPU compute capability), float32 forces, runs record."""

from __future__ import annotations

import json

import pytest

from cnnlab.train import precision

SLICE = ["data.train_subset=200", "data.test_subset=50", "train.epochs=1", "--verbose", "0", "--no-summary"]


@pytest.mark.parametrize(
    "flags, gpus, policy",
    [
        ({"fpu", "avx2", "amx_bf16", "amx_tile"}, [], "mixed_bfloat16"),  # Sapphire Rapids: AMX-BF16
        ({"fpu", "avx512f", "avx512_bf16"}, [], "mixed_bfloat16"),  # Cooper Lake / Zen 4: AVX512-BF16
        ({"fpu", "avx2", "fma", "avx512f"}, [], "float32"),  # AVX-512 without BF16: emulated
        (set(), [(9, 0)], "mixed_bfloat16"),  # H100
        ({"amx_bf16"}, [(7, 5)], "float32"),  # a T4 decides, not the host CPU
    ],
)
def test_auto_follows_the_hardware(flags, gpus, policy):
    r = precision.resolve("auto", flags=flags, gpus=gpus)
    assert r.policy == policy and r.requested == "auto" and r.reason


def test_explicit_precisions_are_taken_as_they_are():
    for p in ("float32", "mixed_bfloat16", "mixed_float16"):
        assert precision.resolve(p, flags={"amx_bf16"}, gpus=[]).policy == p
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve("bfloat16", flags=set(), gpus=[])


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert precision.cpu_flags(info) == {"fpu", "sse2", "avx512_bf16", "amx_tile"}
    assert precision.cpu_flags(tmp_path / "missing") == set()


def test_auto_is_recorded_with_its_reason_and_float32_forces(cli, data_dir, tmp_path, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setattr(precision, "cpu_flags", lambda path="/proc/cpuinfo": {"fpu", "amx_bf16"})
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    assert cli("--results-dir", results, "run", "mnist", "train.precision=auto", *SLICE, "--data-dir", data_dir)[0] == 0
    assert (
        cli(
            "--results-dir",
            results,
            "run",
            "mnist",
            "train.precision=auto",
            "--precision",
            "float32",
            *SLICE,
            "--data-dir",
            data_dir,
        )[0]
        == 0
    )
    runs = sorted(p for p in (results / "mnist").iterdir() if p.is_dir())
    first, second = (json.loads((r / "metrics.json").read_text()) for r in runs)
    assert first["precision"] == {
        "requested": "auto",
        "policy": "mixed_bfloat16",
        "reason": "CPU flags amx_bf16: native bfloat16",
    }
    assert first["dtype_policy"] == "mixed_bfloat16"
    assert second["precision"]["policy"] == "float32" and second["dtype_policy"] == "float32"
    assert "train.precision=float32" in second["overrides"]
    from cnnlab.report.compare import signature

    assert signature(first) != signature(second)  # never one run set


def test_the_earlier_key_is_still_read(write_config):
    from cnnlab.config.experiment import load
    from cnnlab.errors import ConfigError
    from tests.conftest import MNIST_YAML

    # MNIST_YAML has no precision key, like a config from before train.precision
    exp = load(write_config(MNIST_YAML), ["train.mixed_precision=mixed_bfloat16"])
    assert exp.config.train.precision == "mixed_bfloat16"
    with pytest.raises(ConfigError, match="train.mixed_precision: contradicts precision: mixed_float16"):
        load(write_config(MNIST_YAML), ["train.mixed_precision=mixed_bfloat16", "train.precision=mixed_float16"])
    with pytest.raises(ConfigError, match="train.precision: expected one of auto, float32"):
        load(write_config(MNIST_YAML), ["train.precision=bf16"])
