"""What stands behind a result: its method spec, or its recorded predictions, and its claim.

A submission's snapshot is the primary source: ``spec.json`` (the canonical spec the search
researcher writes), a predictions file (``predictions*.json`` / ``.jsonl``: ``{id: label}`` or
rows with ``id`` and ``label``) and any code, kept as text for the static scan. Without a
snapshot, the submission's method label is used only if it parses as a spec.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from aarlab.archive import ArchiveLimits, extract_archive
from aarlab.config import Settings
from aarlab.errors import AarlabError, SpecError
from aarlab.forum.snapshots import BlobStore
from aarlab.forum.tables import Snapshot, SnapshotLink
from aarlab.lab.headline import own_released
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.text import printable
from aarlab.w2s.methods import METHODS
from aarlab.w2s.spec import parse_spec

CODE_SUFFIXES = (".py", ".sh", ".ipynb", ".txt", ".md", ".json", ".jsonl", ".cfg", ".toml")
MAX_TEXT = 2_000_000  # bytes of one file kept for the scan
ENTRY_POINTS = ("run.py", "method.py")  # snapshot code that replication re-runs


class ReplicationError(AarlabError):
    pass


@dataclass
class Method:
    ref: str
    task: str | None = None
    spec: dict | None = None
    predictions: dict[str, object] | None = None
    seeds_used: list[int] | None = None  # the submission's own record; None: not told
    files: dict[str, str] = field(default_factory=dict)  # snapshot path -> text
    claim: dict = field(default_factory=dict)
    snapshot_id: str | None = None
    archive: bytes | None = None  # the snapshot itself, when its code can be re-run
    why_not: str | None = None  # set when there is nothing that can be re-run

    @property
    def replicable(self) -> bool:
        return self.spec is not None or self.predictions is not None or self.runnable

    @property
    def runnable(self) -> bool:
        return self.archive is not None and any(e in self.files for e in ENTRY_POINTS)


def read_snapshot(root: Path) -> tuple[dict | None, dict | None, dict[str, str], str | None]:
    """(spec, predictions, text files, problem) from an extracted snapshot directory."""
    files: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.suffix in CODE_SUFFIXES:
            files[p.relative_to(root).as_posix()] = p.read_bytes()[:MAX_TEXT].decode(
                "utf-8", "replace")
    spec, problem = None, None
    if "spec.json" in files:
        try:
            spec = parse_spec(files["spec.json"]).model_dump(exclude_defaults=True)
        except SpecError as e:
            problem = f"spec.json is not a valid spec: {e.message}"
    preds = None
    for name in sorted(files):
        if Path(name).name.startswith("predictions"):
            preds = parse_predictions(files[name])
            if preds:
                break
    return spec, preds, files, problem


def parse_predictions(text: str) -> dict[str, object] | None:
    try:
        data = json.loads(text)
    except RecursionError:  # nested past the parser's depth: not a predictions table
        return None
    except ValueError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except (ValueError, RecursionError):
            return None
    if isinstance(data, dict) and "predictions" in data:
        data = data["predictions"]
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, list) and all(isinstance(r, dict) and "id" in r for r in data):
        return {str(r["id"]): r.get("label", r.get("prediction")) for r in data}
    return None


def spec_from_label(label: str | None) -> dict | None:
    """A submission's method label as a spec, only when it is one (JSON, or a bare method)."""
    if not label:
        return None
    text = label.strip()
    candidates = [text] if text.startswith("{") else (
        [{"method": text}] if text in METHODS else [])
    for c in candidates:
        try:
            return parse_spec(c).model_dump(exclude_defaults=True)
        except SpecError:
            return None
    return None


def load_method(store: Store, settings: Settings, ref: str | int) -> Method:
    """The method behind a submission id or a snapshot id (sha256)."""
    ref = str(ref)
    with store.session() as s:
        if ref.isdigit():
            sub = s.get(Submission, int(ref))
            if sub is None:
                raise ReplicationError(f"no submission {ref}",
                                       hint="give a submission id or a snapshot id")
            snap_id = sub.snapshot_id or s.scalar(select(SnapshotLink.snapshot_id).where(
                SnapshotLink.submission_id == sub.id))
        else:
            if s.get(Snapshot, ref) is None:
                raise ReplicationError(f"no snapshot {ref}",
                                       hint="give a submission id or a snapshot id")
            snap_id = ref
            sub = s.scalar(select(Submission).where(Submission.snapshot_id == ref)
                           .order_by(Submission.id)) or s.scalar(
                select(Submission).join(SnapshotLink, SnapshotLink.submission_id == Submission.id)
                .where(SnapshotLink.snapshot_id == ref).order_by(Submission.id))
        m = Method(ref=ref, snapshot_id=snap_id)
        if sub is not None:
            m.task = sub.task
            m.seeds_used = list(sub.seeds) if sub.seeds is not None else None
            m.claim = {"submission_id": sub.id, "method": sub.method,
                       "pgr_feedback": sub.pgr_feedback, "pgr_final": sub.pgr_final,
                       "released_pgr": own_released(sub), "is_probe": sub.is_probe}
        label = sub.method if sub is not None else None
    problem = None
    if snap_id:
        data = BlobStore(settings.snapshots_dir).get(snap_id)
        with tempfile.TemporaryDirectory(prefix="aarlab-replicate-") as tmp:
            extract_archive(data, Path(tmp) / "snap", ArchiveLimits.from_settings(settings))
            m.spec, m.predictions, m.files, problem = read_snapshot(Path(tmp) / "snap")
        m.archive = data if any(e in m.files for e in ENTRY_POINTS) else None
    if m.spec is None and m.predictions is None:
        m.spec = spec_from_label(label)
    if not m.replicable:
        # A snapshot's spec.json is the researcher's: its keys reach this message (and, from
        # it, a report's table and the owner's terminal), so it keeps printable text only.
        m.why_not = printable(problem or "", 500) or (
            f"method label {label!r} is not a spec, and "
            + ("the snapshot has no spec.json, run.py or predictions file" if snap_id
               else "no snapshot is linked to the submission"))
    return m
