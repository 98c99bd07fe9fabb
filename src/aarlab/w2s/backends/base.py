"""The encoder contract every feature backend meets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

Progress = Callable[[int], None]  # called with the number of texts just encoded


class Encoder(Protocol):
    """Turns texts into a float32 matrix, one row per text.

    ``key`` identifies the exact weights (name plus the sha256 of the file they came from), so
    a feature cache keyed by it can never serve features from other weights.
    """

    key: str
    dim: int

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray: ...
