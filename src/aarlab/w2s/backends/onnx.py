"""Sentence encoders exported to ONNX, run with onnxruntime (no torch in the loop).

The token states of one named graph output are mean-pooled over the attention mask and
L2-normalised, which is what sentence-transformers does for the MiniLM family; normalising keeps
every backend's features on the same scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aarlab.w2s.backends.base import Progress


class OnnxEncoder:
    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        key: str,
        output: str,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        threads: int = 2,
        provenance: list[dict] | None = None,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path), opts, providers=["CPUExecutionProvider"]
        )
        outputs = {o.name: o for o in self.session.get_outputs()}
        if output not in outputs:
            raise ValueError(f"ONNX model {model_path.name} has no output {output!r}: "
                             f"it has {sorted(outputs)}")
        self.output = output
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding()
        self.key = key
        self.batch_size = batch_size
        self.provenance = provenance or []
        self.dim = int(self.encode(["probe"]).shape[1])

    def _run(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        (states,) = self.session.run([self.output], feed)
        return mean_pool(states, mask)

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            chunk = texts[i : i + self.batch_size]
            chunks.append(self._run(chunk))
            if progress:
                progress(len(chunk))
        if not chunks:
            return np.empty((0, getattr(self, "dim", 0)), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)


def mean_pool(states: np.ndarray, mask: np.ndarray, normalise: bool = True) -> np.ndarray:
    """Mean of token states (B, T, D) over the positions where ``mask`` (B, T) is 1."""
    m = mask[..., None].astype(states.dtype)
    pooled = (states * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    if normalise:
        pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return pooled
