"""Causal language models as frozen encoders: a text's features are its final hidden states,
mean-pooled over its own tokens (or the last token's state).

Also the one-off conversion of a GGUF file into a transformers folder: transformers dequantises
GGUF weights to fp32 on load, and converting the tokenizer is the slow part, so the result is
saved once with ``save_pretrained`` and every later load reads that folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from aarlab.w2s.backends.base import Progress

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no load reports or progress bars

Pooling = Literal["mean", "last"]


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Load ``gguf_path`` through transformers (dequantised to fp32) and save it as a folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    kw = {"gguf_file": gguf_path.name, "local_files_only": True}
    # dequantize=True yields a plain dense model; one that keeps GGUF blocks cannot be saved.
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True), **kw)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kw)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


class CausalEncoder:
    """Hidden-state features of a causal LM saved as a transformers folder."""

    def __init__(
        self,
        path: Path,
        key: str,
        *,
        pooling: Pooling = "mean",
        batch_size: int = 16,
        max_length: int = 128,
        provenance: list[dict] | None = None,
        device: str | None = None,
    ):
        from transformers import AutoModel, AutoTokenizer

        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        # The base model only: the LM head's vocabulary-sized logits are not needed here.
        # fp32 on any device: features are data the kit keeps, so they should not depend much
        # on where they were computed; a GPU (when torch finds one) makes a large task's
        # encoding take minutes instead of CPU-hours.
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = AutoModel.from_pretrained(str(path), dtype=torch.float32,
                                               local_files_only=True).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.key = f"{key}:{pooling}"
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length
        self.provenance = provenance or []
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def _run(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask").to(self.device)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        states = self.model(**enc).last_hidden_state
        return pool(states, enc["attention_mask"], special, self.pooling).cpu().numpy()

    def encode(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Batches of similar length waste little on padding; results go back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            out[idx] = self._run([texts[j] for j in idx])
            if progress:
                progress(len(idx))
        return out


def pool(states: torch.Tensor, attention: torch.Tensor, special: torch.Tensor,
         pooling: Pooling) -> torch.Tensor:
    """Pool (B, T, D) states over each text's own tokens.

    Special tokens (BOS, EOS) are left out of the mean: a BOS state is the same for every text
    and often huge (an attention sink), so it would drown the part that differs.
    """
    keep = attention.bool() & ~special.bool()
    keep = torch.where(keep.any(1, keepdim=True), keep, attention.bool())  # a text of specials
    if pooling == "last":
        last = keep.shape[1] - 1 - keep.flip(1).float().argmax(1)
        return states[torch.arange(len(states)), last].float()
    m = keep.unsqueeze(-1).to(states.dtype)
    return ((states * m).sum(1) / m.sum(1).clamp_min(1.0)).float()
