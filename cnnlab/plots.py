"""Learning curves as in the book's figures: training (dots) vs validation (line), loss and each metric per epoch.

Reference: DLwP §5.2 figures 5.9/5.10 ('bo' training, 'b' validation).
Trap: matplotlib must use the non-interactive Agg backend, or a headless CI machine fails at import.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def curves(history: Mapping[str, Sequence[float]], title: str) -> bytes:
    """PNG bytes: one panel per logged quantity (loss, accuracy, ...), training vs validation."""
    names = [k for k in history if not k.startswith("val_") and k not in ("epoch", "epoch_seconds", "learning_rate")]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = range(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], "bo", label=f"Training {name}")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], "b", label=f"Validation {name}")
        ax.set_xlabel("epoch")
        ax.set_title(f"Training and validation {name}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def overlay(series: Mapping[str, Mapping[str, Sequence[float]]], keys: Sequence[str], title: str) -> bytes:
    """PNG bytes: the same quantities (e.g. val_accuracy, val_loss) of several experiments on shared axes."""
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, history in series.items():
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def panels(images: Sequence, titles: Sequence[str], title: str) -> bytes:
    """PNG bytes: 2-D arrays side by side in grey, each with its title (worked convolutions, Sobel)."""
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.4), squeeze=False)
    for ax, img, name in zip(axes[0], images, titles):
        ax.imshow(img, cmap="gray")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)
