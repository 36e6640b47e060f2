"""Learning curves as in the book's figures: training (dots) vs validation (line), loss and each metric per epoch.

Reference: DLwP §5.2 figures 5.9/5.10 ('bo' training, 'b' validation).
Trap: matplotlib must use the non-interactive Agg backend, or a headless CI machine fails at import.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _panel_of(metric: str) -> str | None:
    """The curve panel a reference belongs on: val_accuracy, test_accuracy, train_accuracy → 'accuracy'."""
    for prefix in ("val_", "test_", "train_"):
        if metric.startswith(prefix):
            return metric[len(prefix) :]
    return None


def _draw_reference(ax, ref: Mapping, color: str = "tab:red", band: bool = True, who: str = "") -> None:
    """The reference value as a dotted line and its accepted range as a band, labelled for the legend."""
    value, rng = ref.get("value"), ref.get("range") or (None, None)
    if not isinstance(value, (int, float)):
        return
    split = ref["metric"].split("_", 1)[0]
    ax.axhline(
        value,
        color=color,
        linestyle=":",
        linewidth=1.4,
        label=f"{who}reference {value:.4g} ({split}{', ' + ref['statistic'] if ref.get('statistic') else ''})",
    )
    low, high = rng if len(rng) == 2 else (None, None)
    if band and isinstance(low, (int, float)) and isinstance(high, (int, float)) and high > low:
        ax.axhspan(low, high, color=color, alpha=0.10, linewidth=0, label=f"{who}accepted {low:.4g}–{high:.4g}")


def _epoch_axis(ax, label: str = "epoch") -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def _title(fig, text: str, width: int) -> None:
    fig.suptitle(textwrap.fill(text, width), fontsize=11)


def curves(
    history: Mapping[str, Sequence[float]],
    title: str,
    boundaries: Sequence[int] = (),
    references: Sequence[Mapping] = (),
) -> bytes:
    """PNG bytes of `curves_figure`."""
    return _png(curves_figure(history, title, boundaries, references))


def curves_figure(
    history: Mapping[str, Sequence[float]],
    title: str,
    boundaries: Sequence[int] = (),
    references: Sequence[Mapping] = (),
):
    """The figure: one panel per logged quantity (loss, accuracy, ...), training vs validation; a dashed line
    after each epoch in `boundaries` (where a new training phase starts); each reference of a val_/test_/train_
    metric drawn on its panel with its accepted band."""
    names = [
        k for k in history if not k.startswith("val_") and k not in ("epoch", "phase", "epoch_seconds", "learning_rate")
    ]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], "bo", label=f"Training {name}")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], "b", label=f"Validation {name}")
        for ref in references:
            if _panel_of(ref.get("metric") or "") == name:
                _draw_reference(ax, ref)
        for b in boundaries:
            ax.axvline(b + 0.5, color="gray", linestyle="--", linewidth=1)
        _epoch_axis(ax, "epoch" + (" (dashed: a new training phase)" if boundaries else ""))
        ax.set_ylabel(name)
        ax.set_title(f"Training and validation {name}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, framealpha=0.7, loc="best")
    _title(fig, title, 45 * len(names))
    fig.tight_layout()
    return fig


def overlay(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    keys: Sequence[str],
    title: str,
    bands: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    references: Mapping[str, Sequence[Mapping]] | None = None,
) -> bytes:
    """PNG bytes of `overlay_figure`."""
    return _png(overlay_figure(series, keys, title, bands, references))


def overlay_figure(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    keys: Sequence[str],
    title: str,
    bands: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    references: Mapping[str, Sequence[Mapping]] | None = None,
):
    """The figure: the same quantities (e.g. val_accuracy, val_loss) of several experiments on shared axes; a
    series' ± std band over its seeds/folds where `bands` has one; each experiment's reference for a panel as a
    dotted line in its colour (the accepted band too when the group shares one reference). One legend below
    the panels, so it covers no curve."""
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.4), squeeze=False)
    handles: dict[str, object] = {}
    for ax, key in zip(axes[0], keys):
        drawn = []
        for label, history in series.items():
            if key not in history:
                continue
            y = np.asarray(history[key], dtype=float)
            x = np.arange(1, len(y) + 1)
            (line,) = ax.plot(x, y, marker="o", ms=3, label=label)
            handles.setdefault(label, line)
            std = (bands or {}).get(label, {}).get(key)
            if std is not None and len(std) == len(y):
                ax.fill_between(
                    x, y - np.asarray(std), y + np.asarray(std), color=line.get_color(), alpha=0.15, linewidth=0
                )
            for ref in (references or {}).get(label, ()):
                if _panel_of(ref.get("metric") or "") == _panel_of(key) or ref.get("metric") == key:
                    drawn.append((ref, line.get_color(), label))  # a test_ reference too, labelled '(test)'
        shared = len({(r.get("value"), tuple(r.get("range") or ())) for r, _, _ in drawn}) == 1
        for ref, color, label in drawn:
            _draw_reference(ax, ref, color, band=shared, who="" if shared else f"{label}: ")
            if shared:
                break
        _epoch_axis(ax)
        ax.set_ylabel(key)
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in series:
                handles.setdefault(lab, h)
    column = 0.06 * max((len(k) for k in handles), default=10) + 0.6  # inches one legend entry takes at size 8
    ncol = max(1, min(len(handles), int(5.5 * len(keys) // column)))  # as many as the figure's width holds
    rows = -(-len(handles) // ncol)
    height = 4.4 + 0.22 * rows
    fig.set_size_inches(5.5 * len(keys), height)
    fig.legend(list(handles.values()), list(handles), loc="lower center", fontsize=8, frameon=False, ncol=ncol)
    _title(fig, title, 50 * len(keys))
    fig.tight_layout(rect=(0, (0.22 * rows + 0.15) / height, 1, 1))
    return fig


def panels(images: Sequence, titles: Sequence[str], title: str, cmaps: Sequence[str] | None = None) -> bytes:
    """PNG bytes: 2-D arrays side by side (grey unless `cmaps` says), each with its title."""
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.4), squeeze=False)
    for ax, img, name, cmap in zip(axes[0], images, titles, cmaps or ["gray"] * len(images)):
        ax.imshow(img, cmap=cmap)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def _display(img):
    """(h, w, 1) → (h, w) grey; (h, w, 3) stays colour; values clipped to [0, 1]."""
    img = np.asarray(img, dtype="float32")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.max() > 1.5:  # raw pixels (0-255) of a model that rescales them itself
        img = img / 255.0
    return np.clip(img, 0, 1)


def saliency_figure(image, max_map, mean_map, title: str) -> bytes:
    """The input and its saliency maps (max and mean of |gradient| over channels), as in lecture 001."""
    return panels(
        [_display(image), max_map, mean_map],
        ["input", "saliency: max |∂score/∂x| over channels", "saliency: mean over channels"],
        title,
        ["gray", "hot", "hot"],
    )


def gradcam_figure(image, cam, title: str) -> bytes:
    """The input, the Grad-CAM heatmap, and the heatmap resized and superimposed on the input (lecture 003)."""
    img = _display(image)
    h, w = img.shape[:2]
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4))
    axes[0].imshow(img, cmap="gray")
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(cam, cmap="jet")
    axes[1].set_title(f"Grad-CAM ({cam.shape[0]}×{cam.shape[1]})", fontsize=9)
    axes[2].imshow(img, cmap="gray")
    axes[2].imshow(cam, cmap="jet", alpha=0.45, extent=(-0.5, w - 0.5, h - 0.5, -0.5), interpolation="bilinear")
    axes[2].set_title("superimposed", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def tiles(
    maps,
    title: str,
    cols: int = 8,
    cmap: str = "viridis",
    normalise_each: bool = True,
    labels: Sequence[str] | None = None,
) -> bytes:
    """A grid of 2-D maps (h, w, n) or images (n, h, w[, 3]) labelled by index (or `labels`), e.g. every
    channel of a layer."""
    maps = np.asarray(maps)
    items = [maps[..., i] for i in range(maps.shape[-1])] if maps.ndim == 3 else list(maps)
    cols = min(cols, len(items))
    rows = -(-len(items) // cols)
    side = 1.3 if len(items) <= 16 else 0.9  # big grids: smaller tiles, and maps thinned to <= 64 pixels
    items = [item[:: max(1, item.shape[0] // 64), :: max(1, item.shape[1] // 64)] for item in items]
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, item) in enumerate(zip(axes.ravel(), items)):
        if normalise_each and item.ndim == 2:
            lo, hi = float(item.min()), float(item.max())
            item = (item - lo) / (hi - lo) if hi > lo else item * 0
        ax.imshow(_display(item) if item.ndim == 3 else item, cmap=cmap)
        ax.set_title(labels[i] if labels else str(i), fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)
