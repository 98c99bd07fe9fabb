"""Near-duplicate ("probe") detection over every earlier submission on a task.

The label-extraction attack changes one or a few answers and watches the score move. We compare
each new prediction vector with all earlier ones by Hamming distance: closer than ``min_rows``
rows, or than ``min_fraction`` of the rows, is a probe. Distance 0 is not: an exact copy of an
earlier submission (a researcher adopting a published result) is answered with that
submission's released score and teaches nothing new.

Both label sets have two classes, so a vector is one bit per row, packed into uint64 words; a
distance against N stored vectors is one XOR and one popcount over an (N, rows/64) matrix —
about a millisecond for thousands of 10k-row submissions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def pack(pred: np.ndarray) -> bytes:
    """Class indices (0/1) to packed bytes, padded to whole uint64 words."""
    bits = np.packbits(np.asarray(pred, dtype=bool))
    pad = (-len(bits)) % 8
    return (np.concatenate([bits, np.zeros(pad, np.uint8)]) if pad else bits).tobytes()


def unpack(blob: bytes, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(blob, np.uint8))[:n].astype(np.int64)


def threshold(n_rows: int, min_rows: int, min_fraction: float) -> int:
    """Smallest distance that is *not* a probe."""
    return max(min_rows, math.ceil(min_fraction * n_rows))


@dataclass(frozen=True)
class Match:
    submission_id: int
    distance: int


class ProbeIndex:
    """Packed prediction vectors of one task, kept in memory, grown in amortised O(1)."""

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.words = math.ceil(n_rows / 64)
        self._mat = np.zeros((64, self.words), np.uint64)
        self._ids = np.zeros(64, np.int64)
        self.size = 0

    def _as_words(self, blob: bytes) -> np.ndarray:
        row = np.frombuffer(blob, np.uint64)
        if row.shape != (self.words,):
            raise ValueError(f"packed vector has {row.size} words, expected {self.words}")
        return row

    def add(self, submission_id: int, blob: bytes) -> None:
        if self.size == len(self._ids):
            self._mat = np.concatenate([self._mat, np.zeros_like(self._mat)])
            self._ids = np.concatenate([self._ids, np.zeros_like(self._ids)])
        self._mat[self.size] = self._as_words(blob)
        self._ids[self.size] = submission_id
        self.size += 1

    def nearest(self, blob: bytes) -> Match | None:
        if self.size == 0:
            return None
        diff = np.bitwise_xor(self._mat[: self.size], self._as_words(blob))
        dist = np.bitwise_count(diff).sum(axis=1, dtype=np.int64)
        i = int(dist.argmin())  # ties: the earliest submission
        return Match(int(self._ids[i]), int(dist[i]))
