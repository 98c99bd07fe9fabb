"""The LoRA causal-LM classifier on a tiny randomly initialised Llama (no download).

The tokenizer is a word-level one built here with the ``tokenizers`` library, so every label
(" True", " False", " A", " B") is exactly one known token and the tests can check the scores
against a hand computation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from aarlab.errors import SpecError
from aarlab.kits.formats import prompt_text
from aarlab.w2s.backends.causal_lm import (
    CausalLMClassifier,
    CausalLMConfig,
    label_token_ids,
    load_config,
)

# Wider than Llama's default 0.02 so the frozen random LM head can express a confident answer.
INIT = 0.2
# peft asks transformers a deprecated question on every wrap; nothing of ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")

SWEET = ["mango", "honey", "sugar", "candy", "cake", "melon"]
SOUR = ["lemon", "lime", "vinegar", "pickle", "yogurt", "sorrel"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # A tiny model gains nothing from threads, and on a busy 2-core machine they thrash.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def binary_rows() -> list[dict]:
    rows = []
    for i, word in enumerate(SWEET + SOUR):
        for j, q in enumerate(["Which food is sweet?", "Name a sweet thing please."]):
            rows.append({"id": f"{i}-{j}", "question": q, "choice": word})
    return rows


def binary_labels(rows: list[dict]) -> np.ndarray:
    return np.array([int(r["choice"] in SWEET) for r in rows])  # index 1 = True


def pair_rows() -> list[dict]:
    return [{"id": str(i), "prompt": "Pick the sweet one.", "first": a, "second": b}
            for i, (a, b) in enumerate(zip(SWEET + SOUR, SOUR + SWEET, strict=True))]


def make_tokenizer() -> PreTrainedTokenizerFast:
    texts = [prompt_text("binary", r) for r in binary_rows()]
    texts += [prompt_text("pairwise", r) for r in pair_rows()]
    words = sorted({w for t in texts for w, _ in
                    pre_tokenizers.Whitespace().pre_tokenize_str(t)} | {"True", "False", "A", "B"})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="[EOS]")


def make_model(vocab_size: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, tie_word_embeddings=False,
                      initializer_range=INIT)
    return LlamaForCausalLM(cfg).eval()


def make_classifier(**overrides) -> CausalLMClassifier:
    tok = make_tokenizer()
    cfg = CausalLMConfig(model="tiny-random-llama", **({"device": "cpu"} | overrides))
    return CausalLMClassifier(make_model(len(tok)), tok, cfg)


def manual_logprobs(clf: CausalLMClassifier, fmt: str, row: dict, labels: list[str]) -> np.ndarray:
    """log p(label | prompt) for one unpadded prompt, straight from the model's full logits."""
    ids = clf.tokenizer(prompt_text(fmt, row), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = clf.model(input_ids=ids).logits[0, -1]
    logprobs = torch.log_softmax(logits, -1)
    return logprobs[clf.tokenizer.convert_tokens_to_ids(labels)].numpy()


def test_scores_are_label_token_logprobs_in_label_order():
    clf = make_classifier(batch_size=5)  # batches mix prompt lengths, so padding is exercised
    assert label_token_ids(clf.tokenizer, "binary") == clf.tokenizer.convert_tokens_to_ids(
        ["False", "True"])
    assert label_token_ids(clf.tokenizer, "pairwise") == clf.tokenizer.convert_tokens_to_ids(
        ["A", "B"])
    rows = binary_rows()
    got = clf.label_logprobs("binary", rows)
    want = np.stack([manual_logprobs(clf, "binary", r, ["False", "True"]) for r in rows])
    np.testing.assert_allclose(got, want, atol=1e-5)
    pairs = pair_rows()
    got = clf.label_logprobs("pairwise", pairs)
    want = np.stack([manual_logprobs(clf, "pairwise", r, ["A", "B"]) for r in pairs])
    np.testing.assert_allclose(got, want, atol=1e-5)
    probs = clf.predict_proba("pairwise", pairs)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs, np.exp(want) / np.exp(want).sum(1, keepdims=True),
                               atol=1e-5)


def test_lora_fit_lowers_loss_and_fits_a_separable_set():
    clf = make_classifier(lr=5e-3, epochs=12, batch_size=8, lora={"dropout": 0.0})
    rows, y = binary_rows(), binary_labels(binary_rows())
    base = {n: p.detach().clone() for n, p in clf.model.named_parameters() if "lora_" not in n}
    before = (clf.predict_proba("binary", rows).argmax(1) == y).mean()
    targets = np.eye(2, dtype=np.float32)[y]
    losses = clf.fit("binary", rows, targets)
    assert len(losses) == 12 * 3
    assert np.mean(losses[-3:]) < 0.25 * np.mean(losses[:3])
    after = (clf.predict_proba("binary", rows).argmax(1) == y).mean()
    assert after == 1.0 and before < 1.0
    # Only the adapters moved: the pretrained weights are frozen.
    for n, p in clf.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n]), n


def test_pairwise_fit_learns_which_candidate_is_sweet():
    clf = make_classifier(lr=5e-3, epochs=12, batch_size=6, lora={"dropout": 0.0})
    rows = pair_rows()
    y = np.array([0 if r["first"] in SWEET else 1 for r in rows])  # 0 = "A"
    clf.fit("pairwise", rows, np.eye(2, dtype=np.float32)[y])
    assert (clf.predict_proba("pairwise", rows).argmax(1) == y).mean() == 1.0


def test_soft_targets_and_custom_loss_reach_the_step():
    clf = make_classifier(epochs=2, batch_size=12)
    seen: list[tuple[torch.Tensor, float]] = []

    def loss_fn(logits, targets, step_frac):
        seen.append((targets.clone(), step_frac))
        return -(targets * torch.log_softmax(logits, -1)).sum(-1)

    rows = binary_rows()
    soft = np.full((len(rows), 2), 0.5, dtype=np.float32)
    soft[:, 1] = np.linspace(0.1, 0.9, len(rows))
    soft[:, 0] = 1 - soft[:, 1]
    clf.fit("binary", rows, soft, loss_fn=loss_fn)
    assert [round(f, 3) for _, f in seen] == [0.0, 0.25, 0.5, 0.75]
    got = torch.cat([t for t, _ in seen[:2]]).numpy()
    assert sorted(map(tuple, got.round(4))) == sorted(map(tuple, soft.round(4)))


def test_a_local_folder_is_selected_by_configuration(tmp_path):
    tok = make_tokenizer()
    model = make_model(len(tok))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    cfg_file = tmp_path / "student.json"
    cfg_file.write_text(json.dumps({"model": str(tmp_path), "device": "cpu", "batch_size": 4}))
    from_disk = CausalLMClassifier.from_config(load_config(cfg_file))
    in_memory = CausalLMClassifier(model, tok, CausalLMConfig(model="mem", device="cpu"))
    rows = binary_rows()[:6]
    # LoRA starts as the identity (B = 0), so both score exactly as the saved base model.
    np.testing.assert_allclose(from_disk.label_logprobs("binary", rows),
                               in_memory.label_logprobs("binary", rows), atol=1e-5)


@pytest.mark.parametrize(("bad", "field"), [
    ({"model": "m", "lora": {"r": 0}}, "lora.r"),
    ({"model": "m", "lr": -1}, "lr"),
    ({"model": "m", "learning_rate": 0.1}, "learning_rate"),
    ({"lr": 0.1}, "model"),
    ({"model": "m", "device": "tpu"}, "device"),
])
def test_bad_config_names_the_field(bad, field):
    with pytest.raises(SpecError) as e:
        load_config(bad)
    assert f"{field}:" in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_config_files_and_models_say_what_is_wrong(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{model:")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_config(tmp_path / "broken.json")
    with pytest.raises(SpecError, match="sentence encoder, not a causal LM"):
        CausalLMClassifier.from_config(CausalLMConfig(model="minilm-l6", device="cpu"))
    with pytest.raises(SpecError, match="cannot load"):
        CausalLMClassifier.from_config(CausalLMConfig(model=str(tmp_path / "nowhere"),
                                                      device="cpu"))
    with pytest.raises(SpecError, match="lora.target_modules"):
        make_classifier(lora={"target_modules": ["c_attn"]})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_one_is_a_clear_error():
    with pytest.raises(SpecError, match="device: 'cuda'"):
        make_classifier(device="cuda")


def test_auto_device_is_the_cpu_here_and_keeps_fp32():
    clf = make_classifier(device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert clf.device.type == expected
    assert next(clf.model.parameters()).dtype == torch.float32
