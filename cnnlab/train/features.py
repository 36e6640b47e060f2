"""Fast feature extraction: a frozen stack (e.g. ImageNet preprocessing + the VGG16 base) run once over every
split, its outputs cached on disk, so the model trains on features.

Reference: lecture 003 "Feature extraction" (option 1: run the convolutional base over the dataset, record its
output, use it as input to a dense model); DLwP §5.3.1, listings 5.17-5.19 (`extract_features`).
Trap: the cache key covers the images' bytes, the stack's full spec, the weights file's bytes and the dtype
policy the stack runs under, so a new weights file, another preprocessing, another image size or another
precision can never reuse stale features (a float32 run reading features a mixed_bfloat16 run computed would
record float32 for a base that ran in bfloat16).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from cnnlab.config.schema import to_plain
from cnnlab.models.stack import build_stack
from cnnlab.store.files import cache_dir, read_npz, write_npz


def _weights_files(specs, weights_dir: Path | None) -> list[Path]:
    out = []
    for spec in specs:
        w = spec.kwargs.get("weights")
        if isinstance(w, str) and w != "imagenet":
            p = Path(w)
            out.append(p if p.is_absolute() or weights_dir is None else Path(weights_dir) / p)
    return out


def cache_key(splits, specs, weights_dir: Path | None, policy: str = "float32") -> str:
    """The features' cache name: the stack's spec, the splits' arrays, the weights' bytes; and `policy` (the Keras
    dtype policy the stack computes in) unless it is float32, so that float32 features keep their earlier name."""
    h = hashlib.sha1(yaml.safe_dump([to_plain(s) for s in specs]).encode())
    if policy != "float32":
        h.update(f"dtype policy {policy}".encode())
    for arr in (splits.x_train, splits.x_val, splits.x_test):
        if arr is not None:
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).data)
    for path in _weights_files(specs, weights_dir):
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def extract(splits, specs, ctx, weights_dir: Path | None, batch_size: int = 32, log=print):
    """`splits` with every x replaced by the stack's output; (new splits, True if read from the cache)."""
    import keras

    key = cache_key(splits, specs, weights_dir, keras.config.dtype_policy().name)
    cache = cache_dir("features", f"{key}.npz")
    feats = read_npz(cache)
    if feats is not None and "x_train" in feats:
        return _apply(splits, feats, "from cache"), True
    model = build_stack(
        splits.x_train.shape[1:],
        specs,
        "features",
        ctx,
        path="data.features",
        weights_dir=weights_dir,
        load_weights=True,
    )
    feats = {}
    for name in ("x_train", "x_val", "x_test"):
        x = getattr(splits, name)
        if x is not None:
            log(f"  extracting features of {name[2:]} ({len(x)} samples) with {model.layers[-1].name} ...")
            # float32 on disk whatever the policy: under mixed_bfloat16 the base's output is bfloat16, which
            # numpy's .npz (and the cache's digest) cannot hold; the head computes in the policy's dtype anyway
            feats[name] = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype="float32")
    write_npz(cache, **feats)
    return _apply(splits, feats, "extracted"), False


def _apply(splits, feats, how: str):
    shape = "×".join(str(d) for d in feats["x_train"].shape[1:])
    return replace(
        splits,
        x_train=feats["x_train"],
        x_val=feats.get("x_val"),
        x_test=feats["x_test"],
        source=f"{splits.source}; features {how} ({shape})",
    )
