"""Every packaged model: the registry's promises (fast), and real loads (slow, AARLAB_SLOW=1).

The slow tests fetch hundreds of MB (cached across sessions in the sources cache) and convert
each GGUF once per AARLAB_HOME (30 s to several minutes on 2 cores).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from aarlab.w2s.backends.registry import MODELS, get_model, load_encoder

needs_slow = pytest.mark.skipif(os.environ.get("AARLAB_SLOW") != "1",
                                reason="big download and load: set AARLAB_SLOW=1")
CAUSAL = [n for n, m in MODELS.items() if m.kind == "causal-lm"]


def test_every_model_says_what_it_is_and_under_which_licence():
    assert {"minilm-l6", "minilm-l3-onnx", "minilm-int8", "mpnet", "smollm2-135m",
            "gemma3-270m", "qwen2.5-0.5b"} <= set(MODELS)
    for name, spec in MODELS.items():
        assert spec.name == name and spec.description and spec.params and spec.licence
        assert (spec.prepare is not None) == (spec.kind == "causal-lm"), name
    assert "Gemma Terms of Use" in get_model("gemma3-270m").licence


@pytest.mark.slow
@needs_slow
def test_mpnet_from_its_five_parts(settings):
    enc = load_encoder("mpnet", settings.sources_dir)
    assert enc.key.startswith("mpnet@") and enc.dim == 768
    assert len(enc.provenance) == 5
    a, b, c = enc.encode(["A man is playing a guitar.", "Someone plays the guitar.",
                          "The stock market fell sharply today."])
    assert a @ b > a @ c + 0.3


@pytest.mark.slow
@needs_slow
@pytest.mark.parametrize("name", CAUSAL)
def test_gguf_models_convert_and_still_know_things(name, settings):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = get_model(name).prepare(settings.sources_dir)
    assert folder.name.startswith(f"{name}@") and (folder / ".complete").exists()
    model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, -1], -1)
    paris, london = (tok.encode(w, add_special_tokens=False)[0] for w in (" Paris", " London"))
    # Dequantised weights that were read wrongly would not prefer Paris by a wide margin.
    assert logprobs[paris] > logprobs[london] + 2.0

    enc = load_encoder(name, settings.sources_dir)
    assert enc.key.startswith(f"{name}@") and enc.key.endswith(":mean")
    feats = enc.encode(["I love this car.", "I adore this car.", "Quarterly tax filing rules."])
    assert feats.shape == (3, enc.dim) and np.isfinite(feats).all()


@pytest.mark.slow
@needs_slow
def test_packaged_causal_lm_fine_tunes_with_lora_by_name(settings, tiny_tweets):
    from aarlab.w2s.backends.causal_lm import CausalLMClassifier, CausalLMConfig

    kit, key = tiny_tweets
    rows = [{k: v for k, v in r.items() if k != "label"} for r in key.train_label_rows()[:8]]
    clf = CausalLMClassifier.from_config(
        CausalLMConfig(model="smollm2-135m", device="cpu", batch_size=4, max_length=128,
                       lr=1e-3, epochs=3), settings.sources_dir)
    y = np.array([kit.label_names.index(r["label"]) for r in key.train_label_rows()[:8]])
    losses = clf.fit("binary", rows, np.eye(2, dtype=np.float32)[y])
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    probs = clf.predict_proba("binary", rows)
    assert probs.shape == (8, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
