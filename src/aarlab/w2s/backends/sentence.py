"""Sentence-transformers encoders loaded from a local folder (never a hub)."""

from __future__ import annotations

import os

import numpy as np

from aarlab.w2s.backends.base import Progress

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no per-load weight progress bars


class SentenceEncoder:
    def __init__(self, path: str, key: str, batch_size: int = 64, max_seq_length: int = 128,
                 provenance: list[dict] | None = None):
        from sentence_transformers import SentenceTransformer

        self.key = key
        self.provenance = provenance or []
        self.batch_size = batch_size
        self.model = SentenceTransformer(path, device="cpu", local_files_only=True)
        self.model.max_seq_length = max_seq_length
        self.dim = int(self.model.get_embedding_dimension()
                       if hasattr(self.model, "get_embedding_dimension")
                       else self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i : i + self.batch_size]
            out[i : i + len(chunk)] = self.model.encode(
                chunk, batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
            if progress:
                progress(len(chunk))
        return out
