"""Synthetic problems with a known truth for method-behaviour tests (no kit, no download)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from aarlab.w2s.heads import HeadConfig
from aarlab.w2s.methods.base import Context


def two_clusters(n: int = 600, d: int = 8, gap: float = 3.0, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian clusters along the first axis (class 0 left, class 1 right)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 0] += np.where(y == 1, gap / 2, -gap / 2)
    return x, y


def soft(labels: np.ndarray, conf: float = 0.8) -> np.ndarray:
    """Soft weak labels: ``conf`` on the given class."""
    out = np.full((len(labels), 2), 1 - conf, np.float32)
    out[np.arange(len(labels)), labels] = conf
    return out


def flip(y: np.ndarray, rate: float, seed: int = 1, only_class: int | None = None) -> np.ndarray:
    """Flip a ``rate`` share of labels (of ``only_class`` rows, when given)."""
    rng = np.random.default_rng(seed)
    hit = rng.random(len(y)) < rate
    if only_class is not None:
        hit &= y == only_class
    return np.where(hit, 1 - y, y)


def context(x: np.ndarray, weak: np.ndarray, fmt: str = "binary", seed: int = 0,
            head: HeadConfig | None = None) -> Context:
    """A Context over synthetic arrays; the 'kit' only answers format, classes and rows."""
    kit = SimpleNamespace(format=fmt, n_classes=weak.shape[1],
                          rows=lambda split: [{} for _ in range(len(x))])
    return Context(kit=kit, seed=seed, head=head or HeadConfig(),
                   x={"train_unlabel": x, "test": x}, weak={"train_unlabel": weak, "test": weak})
