"""Causal-LM hidden-state features, on a tiny random Llama saved to disk (no download)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from aarlab.w2s.backends.causal import CausalEncoder, pool

TEXTS = ["the car drives itself", "rain", "a long sentence about the weather and the car",
         "itself the car", "weather"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    words = sorted({w for t in TEXTS for w in t.split()})
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # A BOS on every text, as Gemma's tokenizer adds one: pooling must leave it out.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[
        ("<s>", vocab["<s>"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")  # no pad token: the encoder must add one
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_pool_averages_only_a_texts_own_tokens():
    states = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    attention = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    special = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 1]])  # BOS, and an EOS on the second
    mean = pool(states, attention, special, "mean")
    torch.testing.assert_close(mean[0], states[0, 1:3].mean(0))
    torch.testing.assert_close(mean[1], states[1, 1:3].mean(0))
    last = pool(states, attention, special, "last")
    torch.testing.assert_close(last, torch.stack([states[0, 2], states[1, 2]]))
    # A text made only of special tokens falls back to them rather than dividing by zero.
    only = pool(states[:1, :1], torch.tensor([[1]]), torch.tensor([[1]]), "mean")
    torch.testing.assert_close(only, states[:1, 0])


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_features_do_not_depend_on_batching_or_order(tiny_dir, pooling):
    enc = CausalEncoder(tiny_dir, key="tiny@0123", pooling=pooling, batch_size=2)
    assert enc.key == f"tiny@0123:{pooling}" and enc.dim == 32
    seen = []
    feats = enc.encode(TEXTS, seen.append)
    assert feats.shape == (len(TEXTS), 32) and seen == [2, 2, 1]
    alone = np.concatenate([enc.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(feats, alone, atol=1e-5)


def test_mean_features_are_the_base_models_states_without_bos(tiny_dir):
    enc = CausalEncoder(tiny_dir, key="tiny@0123")
    base = AutoModel.from_pretrained(str(tiny_dir)).eval()
    ids = enc.tokenizer("the car drives itself", return_tensors="pt")["input_ids"]
    assert ids[0, 0].item() == enc.tokenizer.bos_token_id
    with torch.no_grad():
        states = base(input_ids=ids).last_hidden_state[0]
    np.testing.assert_allclose(enc.encode(["the car drives itself"])[0],
                               states[1:].mean(0).numpy(), atol=1e-5)


def test_unknown_pooling_is_refused(tiny_dir):
    with pytest.raises(ValueError, match="pooling"):
        CausalEncoder(tiny_dir, key="k", pooling="max")  # type: ignore[arg-type]
