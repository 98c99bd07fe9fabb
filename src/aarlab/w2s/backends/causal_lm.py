"""A causal LM as the strong student: LoRA fine-tuning, scored by the label token's log-prob.

As in the original study's Qwen setup, a row becomes a plain prompt (``formats.prompt_text``) and
the classifier is the model's next-token distribution after it, read at the label tokens
(" A"/" B" for pairs, " False"/" True" for binary rows)::

    score(row)_k = log p(label_token_k | prompt(row))      class probs = softmax_k(score)

Training fits LoRA adapters (peft) to soft targets with any loss of the heads' shape
``loss_fn(logits, targets, step_frac) -> per-example loss``, so W2S methods plug in unchanged.
Which model runs is configuration (``CausalLMConfig``: a packaged name, a local folder, a hub id,
a GGUF file), and so is the device: cuda with bf16 when available, else fp32 on the CPU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aarlab.errors import SpecError
from aarlab.kits.formats import LABEL_TOKENS, prompt_text
from aarlab.w2s.heads import LossFn, xent_loss

Progress = Callable[[int], None]


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                 "gate_proj", "up_proj", "down_proj"],
        min_length=1,
        description="Names of the linear layers that get adapters (Llama/Qwen/Gemma naming).",
    )


class CausalLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="A packaged causal LM (e.g. 'qwen2.5-0.5b'), a local "
                                   "transformers folder, or a hub model id.")
    gguf_file: str | None = Field(None, description="GGUF file name inside ``model``'s folder.")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(512, ge=8, description="Prompt tokens kept (the tail is kept).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0


def load_config(source: dict | str | Path) -> CausalLMConfig:
    """A config from a dict or a JSON file; a bad value names its field."""
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            source = json.loads(path.read_text())
        except FileNotFoundError:
            raise SpecError(f"causal-LM config file {path} does not exist") from None
        except ValueError as e:
            raise SpecError(f"causal-LM config file {path} is not valid JSON: {e}") from None
    try:
        return CausalLMConfig.model_validate(source)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}"
                             for err in e.errors())
        raise SpecError(f"bad causal-LM config: {problems}") from None


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SpecError("device: 'cuda' was asked for but no CUDA device is available",
                        hint="use device 'auto' or 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def label_token_ids(tokenizer: Any, fmt: str) -> list[int]:
    """The vocabulary id that starts each label (" A"/" B", " False"/" True") after a prompt.

    Read in context ("Answer:" + label), so a tokenizer that treats a leading space specially
    (SentencePiece's "▁") yields the token a prompt is really followed by.
    """
    ids = []
    head = tokenizer.encode("Answer:", add_special_tokens=False)
    for text in LABEL_TOKENS[fmt]:
        toks = tokenizer.encode("Answer:" + text, add_special_tokens=False)
        if toks[: len(head)] == head and len(toks) > len(head):
            ids.append(toks[len(head)])
            continue
        alone = tokenizer.encode(text, add_special_tokens=False)
        if not alone:
            raise SpecError(f"the tokenizer turns label {text!r} into no tokens")
        ids.append(alone[0])
    if len(set(ids)) != len(ids):
        raise SpecError(f"labels {LABEL_TOKENS[fmt]} start with the same token {ids}: the "
                        "tokenizer cannot tell them apart")
    return ids


class CausalLMClassifier:
    """LoRA-wrapped causal LM with label-token scoring. Build with ``from_config`` or directly
    from a model and tokenizer already in memory (tests use a tiny random one)."""

    def __init__(self, model: Any, tokenizer: Any, cfg: CausalLMConfig):
        from peft import LoraConfig, get_peft_model

        self.cfg = cfg
        self.device = pick_device(cfg.device)
        linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear)}
        targets = [t for t in cfg.lora.target_modules if t in linear]
        if not targets:
            raise SpecError(f"lora.target_modules {cfg.lora.target_modules} match no linear "
                            f"layer of {cfg.model!r}", hint=f"its layers: {sorted(linear)}")
        torch.manual_seed(cfg.seed)  # the adapters' initialisation
        lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=targets, task_type="CAUSAL_LM")
        self.model = get_peft_model(model, lora).to(self.device)
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        # The answer slot is at the end of the prompt: when a prompt is too long, drop its head.
        tokenizer.truncation_side = "left"
        tokenizer.padding_side = "left"

    @classmethod
    def from_config(cls, cfg: CausalLMConfig, sources_dir: Path | None = None
                    ) -> CausalLMClassifier:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        name, kw = resolve_model(cfg, sources_dir)
        dtype = torch.bfloat16 if pick_device(cfg.device).type == "cuda" else torch.float32
        model_kw = dict(kw)
        if "gguf_file" in kw:
            from transformers import GgufConfig

            # Dense weights: packed GGUF blocks are not trainable, LoRA needs a plain model.
            model_kw["quantization_config"] = GgufConfig(dequantize=True)
        try:
            model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **model_kw)
            tokenizer = AutoTokenizer.from_pretrained(name, **kw)
        except OSError as e:
            raise SpecError(f"model: cannot load {cfg.model!r}: {str(e).splitlines()[0]}",
                            hint="give a packaged model name, a local folder or a hub id "
                                 "reachable from here") from None
        return cls(model, tokenizer, cfg)

    def _encode(self, fmt: str, rows: list[dict]) -> list[list[int]]:
        prompts = [prompt_text(fmt, r) for r in rows]
        enc = self.tokenizer(prompts, truncation=True, max_length=self.cfg.max_length)
        return enc["input_ids"]

    def _label_logprobs(self, ids: list[list[int]], label_ids: list[int]) -> torch.Tensor:
        """(B, K) log-probabilities of the label tokens right after each prompt."""
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        # Left padding puts every prompt's last token at position -1, so only that position's
        # logits are computed (the vocabulary projection dominates the cost otherwise); explicit
        # position ids keep each prompt's positions as if it were alone.
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        positions = (mask.cumsum(1) - 1).clamp_min(0)
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=positions.to(self.device), logits_to_keep=1)
        logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        return logprobs[:, label_ids]

    def label_logprobs(self, fmt: str, rows: list[dict]) -> np.ndarray:
        """(N, K) log p(label token | prompt) for every row, in row order."""
        label_ids = label_token_ids(self.tokenizer, fmt)
        ids = self._encode(fmt, rows)
        self.model.eval()
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(ids), self.cfg.batch_size):
                chunks.append(self._label_logprobs(ids[i : i + self.cfg.batch_size], label_ids))
        return torch.cat(chunks).cpu().numpy() if chunks else np.empty((0, len(label_ids)))

    def predict_proba(self, fmt: str, rows: list[dict]) -> np.ndarray:
        z = self.label_logprobs(fmt, rows)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def fit(self, fmt: str, rows: list[dict], targets: np.ndarray, *,
            loss_fn: LossFn = xent_loss, progress: Progress | None = None,
            weights: np.ndarray | None = None) -> list[float]:
        """Fit the adapters to soft ``targets`` (N, K), optionally weighting each row's loss as
        the heads do (``weights`` (N,)); returns the loss of every step."""
        if len(rows) != len(targets):
            raise ValueError(f"{len(rows)} rows but {len(targets)} targets")
        if len(rows) == 0:
            raise ValueError("cannot fine-tune on zero rows")
        label_ids = label_token_ids(self.tokenizer, fmt)
        ids = self._encode(fmt, rows)
        y = torch.as_tensor(np.asarray(targets), dtype=torch.float32, device=self.device)
        w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float32,
                                                         device=self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        gen = torch.Generator().manual_seed(self.cfg.seed)
        bs = self.cfg.batch_size
        total = self.cfg.epochs * -(-len(ids) // bs)
        losses: list[float] = []
        self.model.train()
        for _ in range(self.cfg.epochs):
            order = torch.randperm(len(ids), generator=gen).tolist()
            for i in range(0, len(order), bs):
                idx = order[i : i + bs]
                # Log-probs work as logits: softmax over the K labels renormalises them.
                logits = self._label_logprobs([ids[j] for j in idx], label_ids)
                per_example = loss_fn(logits, y[idx], len(losses) / total)
                if w is None:
                    loss = per_example.mean()
                else:
                    loss = (per_example * w[idx]).sum() / w[idx].sum().clamp_min(1e-8)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                if progress:
                    progress(len(idx))
        self.model.eval()
        return losses


def resolve_model(cfg: CausalLMConfig, sources_dir: Path | None) -> tuple[str, dict]:
    """(name or path for ``from_pretrained``, its keyword arguments)."""
    from aarlab.w2s.backends.registry import MODELS

    spec = MODELS.get(cfg.model)
    if spec is not None and spec.prepare is not None and cfg.gguf_file is None:
        if sources_dir is None:
            from aarlab.config import get_settings

            sources_dir = get_settings().sources_dir
        return str(spec.prepare(sources_dir)), {"local_files_only": True}
    if spec is not None and spec.prepare is None:
        raise SpecError(f"model: {cfg.model!r} is a sentence encoder, not a causal LM",
                        hint="packaged causal LMs: " + ", ".join(
                            n for n, m in MODELS.items() if m.prepare is not None))
    kw: dict = {}
    if cfg.gguf_file:
        kw["gguf_file"] = cfg.gguf_file
    if Path(cfg.model).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1":
        kw["local_files_only"] = True
    return cfg.model, kw
