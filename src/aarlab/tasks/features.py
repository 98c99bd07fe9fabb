"""Content-addressed feature cache: the same model on the same texts is encoded once.

A cache entry's name is sha256(model key, template version, every text), so a change to any of
them is a miss, never a stale hit. Entries are written atomically (temp file, then rename).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from aarlab.errors import CorruptCacheError
from aarlab.kits.formats import candidate_texts
from aarlab.w2s.backends.base import Encoder, Progress

TEMPLATE_VERSION = "v1"


def cache_key(model_key: str, texts: list[str]) -> str:
    h = hashlib.sha256(f"{model_key}\x1e{TEMPLATE_VERSION}".encode())
    for t in texts:
        h.update(b"\x1e")
        h.update(t.encode())
    return h.hexdigest()


def encode_cached(
    encoder: Encoder, texts: list[str], cache_dir: Path, progress: Progress | None = None
) -> tuple[np.ndarray, bool]:
    """Encode ``texts`` or load them from the cache. Returns (features, was_cached)."""
    path = cache_dir / "features" / f"{cache_key(encoder.key, texts)}.npy"
    if path.exists():
        try:
            feats = np.load(path)
        except (ValueError, OSError, EOFError) as e:
            raise CorruptCacheError(
                f"corrupt feature cache file {path}: {e}", hint=f"delete {path} and build again"
            ) from e
        if feats.shape != (len(texts), encoder.dim):
            raise CorruptCacheError(
                f"feature cache file {path} has shape {feats.shape}, expected "
                f"{(len(texts), encoder.dim)}",
                hint=f"delete {path} and build again",
            )
        if progress:
            progress(len(texts))
        return feats, True
    feats = encoder.encode(texts, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, feats)
    os.replace(tmp, path)
    return feats, False


def row_texts(fmt: str, rows: list[dict]) -> list[str]:
    return [t for r in rows for t in candidate_texts(fmt, r)]


def row_features(fmt: str, text_features: np.ndarray) -> np.ndarray:
    """Per-row features from per-text ones: a binary row is its text's embedding; a pair is
    ``emb(first) - emb(second)``, so swapping A and B negates the features."""
    if fmt == "binary":
        return text_features
    return text_features[0::2] - text_features[1::2]
