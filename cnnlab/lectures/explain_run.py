"""`cnnlab explain <run or experiment>`: the pictures of cnnlab/lectures/explain.py for a trained run, in
<run>/explain/.

Reference: lectures 001 (saliency), 003 (activations, filter patterns, Grad-CAM), 004 (first-layer filters).
Trap: the trained model lives in the ignored cache (.cache/models/<experiment>/<run id>.keras, named by the
run's metrics.json), not in results/; a run from another machine has no model here and must be run again.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnlab import data as data_mod
from cnnlab.config.experiment import Ctx, load
from cnnlab.errors import CnnlabError
from cnnlab.lectures import explain
from cnnlab.models.stack import build_model
from cnnlab.report import plots
from cnnlab.store.files import atomic_write, cache_dir
from cnnlab.store.results import complete_runs, read_metrics


def find_run(ref: str, results_root: Path) -> Path:
    """A run folder given directly, or the newest complete run of an experiment that has a saved model."""
    path = Path(ref)
    if path.is_dir() and (path / "metrics.json").is_file():
        return path
    runs = [r for r in complete_runs(results_root, ref) if _model_file(r) is not None]
    if not runs:
        raise CnnlabError(
            f"{results_root / ref}: no complete run with a saved model here; train one first "
            f"(cnnlab run {ref}) or pass a run folder"
        )
    return runs[-1]


def _model_file(run: Path) -> Path | None:
    """The run's saved model: metrics.json says '<cache>/models/…' (results.portable), read in this machine's
    cache folder; older runs recorded an absolute path."""
    name = read_metrics(run).get("model_file")
    if name and name.startswith("<cache>/"):
        name = str(cache_dir(name[len("<cache>/") :]))
    return Path(name) if name and Path(name).is_file() else None


def class_name(exp, cls: int) -> str:
    """'cat (0)' where the dataset names its classes, else the index."""
    names = getattr(data_mod.DATASETS.get(exp.config.data.dataset), "class_names", None)
    return f"{names[cls]} ({cls})" if names and 0 <= cls < len(names) else str(cls)


def _input(run: Path, exp, image_path: str | None, index: int, data_dir: str | None):
    """One input sample (batch axis included) and a caption."""
    shape = tuple(exp.config.model.input_shape)
    if image_path:
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(image_path)
            img.load()
        except (OSError, UnidentifiedImageError) as exc:
            raise CnnlabError(f"{image_path}: cannot read as an image: {exc}") from None
        channels = shape[-1] if len(shape) == 3 else 1
        side = (shape[1], shape[0]) if len(shape) == 3 else (int(math.isqrt(shape[0])),) * 2
        img = img.convert("L" if channels == 1 else "RGB").resize(side)
        arr = np.asarray(img, dtype="float32") / 255.0
        return arr.reshape((1, *shape)), f"{Path(image_path).name}"
    splits = data_mod.load(
        exp.config.data, data_mod.resolve_data_dir(data_dir, exp.config.data.data_dir, None), exp.config.seed
    )
    if not 0 <= index < len(splits.x_test):
        raise CnnlabError(f"--index: expected 0 to {len(splits.x_test) - 1}, received {index}")
    label = splits.y_test[index]
    label = int(np.argmax(label)) if np.ndim(label) else int(label)
    return splits.x_test[index : index + 1].astype("float32"), f"test image {index} (label {class_name(exp, label)})"


def _as_image(x: np.ndarray) -> np.ndarray:
    """One input sample as a displayable (h, w[, c]) image; flat inputs of a square size are folded back."""
    x = x[0]
    if x.ndim == 1 and math.isqrt(x.size) ** 2 == x.size:
        side = math.isqrt(x.size)
        return x.reshape(side, side, 1)
    return x


MAX_CHANNELS = 64  # activation grids beyond this (VGG16's 512 channels) would be unreadable and large
MAX_ACTIVATION_LAYERS = 8  # beyond this (VGG16's 18), only the first conv layer and the pooling outputs


def pattern_layers(conv: list[int], max_layers: int) -> list[int]:
    """Up to `max_layers` conv layers for filter patterns, evenly spread from the first to the last."""
    if len(conv) <= max_layers:
        return conv
    picks = {round(i * (len(conv) - 1) / (max_layers - 1)) for i in range(max_layers)} if max_layers > 1 else {0}
    return [conv[p] for p in sorted(picks)]


def run_explain(
    ref: str,
    results_root: Path,
    image: str | None = None,
    index: int = 0,
    class_index: int | None = None,
    n_filters: int = 16,
    steps: int = 30,
    data_dir: str | None = None,
    max_layers: int = 4,
) -> list[Path]:
    """Write saliency, Grad-CAM, activation, filter-pattern and kernel pictures for one run; return the files."""
    import keras

    run = find_run(ref, results_root)
    model_file = _model_file(run)
    if model_file is None:
        raise CnnlabError(f"{run}: its trained model is not in the cache on this machine; run the experiment again")
    exp = load(run / "config.yaml")
    # rebuilt from the run's resolved config, then its trained weights: keras.saving.load_model cannot
    # deserialize every preprocessing layer (Keras 3.15's RandomShear refuses its own saved config)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # gradients in full precision, whatever the run trained in (its
    try:  # weights are float32 either way; TensorFlow's eager ReluGrad has no bfloat16 kernel on the CPU)
        model = build_model(exp.config.model, exp.config.name, Ctx(str(run / "config.yaml")))
    finally:
        keras.config.set_dtype_policy(policy)
    try:
        model.load_weights(model_file)
    except (ValueError, OSError) as exc:
        raise CnnlabError(f"{model_file}: its weights do not fit the model of {run / 'config.yaml'}: {exc}") from None
    shape = tuple(model.input_shape[1:])
    if not (len(shape) == 3 and shape[-1] in (1, 3)) and not (
        len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]
    ):
        raise CnnlabError(
            f"{run}: the model's input {shape} is not an image (h, w, 1 or 3); explain the model that "
            "sees the pixels (e.g. vgg16_augmented rather than a head trained on features)"
        )
    x, caption = _input(run, exp, image, index, data_dir)
    n_classes = explain.n_classes(model)
    cls = explain.predicted_class(model, x) if class_index is None else class_index
    if not 0 <= cls < n_classes:
        raise CnnlabError(f"--class: expected 0 to {n_classes - 1}, received {cls}")
    out = run / "explain"
    out.mkdir(exist_ok=True)
    written: list[Path] = []

    def save(name: str, png: bytes) -> None:
        atomic_write(out / name, png)
        written.append(out / name)

    shown = _as_image(x)
    sal = explain.saliency(model, x, cls)
    fold = lambda m: m.reshape(shown.shape[:2]) if m.ndim == 1 else m  # noqa: E731
    sal_max = fold(sal.max_map if sal.gradient.ndim > 1 else np.abs(sal.gradient))
    sal_mean = fold(sal.mean_map if sal.gradient.ndim > 1 else np.abs(sal.gradient))
    save(
        "saliency.png",
        plots.saliency_figure(shown, sal_max, sal_mean, f"{exp.config.name}: {caption}, class {class_name(exp, cls)}"),
    )
    layers = explain.chain(model)  # a nested pretrained base is looked into, layer by layer
    conv = [i for i, layer in enumerate(layers) if type(layer).__name__.startswith("Conv")]
    if conv:
        cam = explain.grad_cam(model, x, cls)
        save(
            "gradcam.png",
            plots.gradcam_figure(
                shown, cam, f"{exp.config.name}: Grad-CAM on {layers[conv[-1]].name}, class {class_name(exp, cls)}"
            ),
        )
        maps_by_layer = explain.activations(model, x)
        if len(maps_by_layer) > MAX_ACTIVATION_LAYERS:  # a deep base: the first conv layer and each block's output
            keep = [next(iter(maps_by_layer))] + [n for n in maps_by_layer if "pool" in n.lower()]
            maps_by_layer = {n: maps_by_layer[n] for n in keep}
        for name, maps in maps_by_layer.items():
            shown_maps = maps[..., :MAX_CHANNELS]
            what = (
                f"{maps.shape[-1]} channels"
                if maps.shape[-1] <= MAX_CHANNELS
                else f"the first {MAX_CHANNELS} of {maps.shape[-1]} channels"
            )
            save(f"activations_{name}.png", plots.tiles(shown_maps, f"{name}: {what} for {caption}", cols=16))
        for i in pattern_layers(conv, max_layers):
            layer = layers[i]
            k = min(n_filters, layer.filters)
            pixel_scale = 255.0 if float(x.max()) > 1.5 else 1.0  # raw pixels, or already scaled to [0, 1]
            results = [explain.filter_pattern(model, i, f, steps=steps, pixel_scale=pixel_scale) for f in range(k)]
            patterns = [explain.deprocess(img) for img, _, _ in results]
            # a filter whose activation stays 0 on the start image has no gradient: its tile is the start noise
            labels = [
                f"{f}" if after != before else f"{f}: no gradient" for f, (_, before, after) in enumerate(results)
            ]
            save(
                f"filters_{layer.name}.png",
                plots.tiles(
                    np.stack(patterns),
                    f"{layer.name}: input patterns that maximise filters 0-{k - 1} ({steps} ascent steps)",
                    cols=8,
                    cmap="gray",
                    labels=labels,
                ),
            )
        first = layers[conv[0]]
        kernel = keras.ops.convert_to_numpy(first.kernel)  # (kh, kw, in, filters)
        if kernel.ndim == 4 and kernel.shape[2] in (1, 3):
            kernels = np.moveaxis(kernel, -1, 0)
            kernels = (kernels - kernels.min()) / (kernels.max() - kernels.min() + 1e-12)
            save(
                f"kernels_{first.name}.png",
                plots.tiles(
                    kernels,
                    f"{first.name}: the {kernel.shape[-1]} learned {kernel.shape[0]}×{kernel.shape[1]} kernels",
                    cols=8,
                    cmap="gray",
                    normalise_each=False,
                ),
            )
    index_md = [
        f"# {exp.config.name}: inside the trained model",
        "",
        f"Run `{run.name}`, input: {caption}, explained class {class_name(exp, cls)} "
        f"(predicted {class_name(exp, explain.predicted_class(model, x))}). Generated by `cnnlab explain`.",
        "",
    ]
    index_md += [f"![{p.stem}]({p.name})" for p in written]
    atomic_write(out / "README.md", "\n\n".join(index_md) + "\n")
    return written
