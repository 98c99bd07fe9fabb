"""Re-run a snapshot's own code (``run.py`` or ``method.py``) in a fresh sandbox on a kit.

The code runs as ``python ENTRY KIT_DIR`` (``AARLAB_KIT`` is set too) in a workspace holding a
copy of the snapshot minus any recorded predictions, with only that kit mounted, no network and
no answer key; it must write ``predictions.json`` (``{id: label}``). Whatever it cannot
produce there counts as wrong, so code that reads labels it was never given replicates at
nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from aarlab import safe_files
from aarlab.archive import ArchiveLimits, extract_archive
from aarlab.config import Settings
from aarlab.replication.method import ENTRY_POINTS, parse_predictions
from aarlab.sandbox.factory import make_sandbox
from aarlab.sandbox.spec import Limits, SandboxSpec
from aarlab.text import printable


def rerun_snapshot(archive: bytes, kit_dir: Path, settings: Settings,
                   timeout_s: float = 600.0) -> tuple[dict[str, object], str]:
    """(predictions, a note on how the run went); predictions are empty when it failed."""
    with tempfile.TemporaryDirectory(prefix="aarlab-rerun-") as tmp:
        ws = Path(tmp) / "workspace"
        extract_archive(archive, ws, ArchiveLimits.from_settings(settings))
        for p in list(ws.rglob("predictions*")):  # the code must make them again
            if p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
        entry = next((e for e in ENTRY_POINTS if (ws / e).is_file()), None)
        if entry is None:
            return {}, "no run.py or method.py in the snapshot"
        # A name (and so a host uid, with its process cap) per snapshot: one snapshot's fork
        # bomb must not stop another's re-run from starting.
        name = f"replication-{hashlib.sha256(archive).hexdigest()[:12]}"
        box = make_sandbox(SandboxSpec(name=name, workspace=ws, kit=Path(kit_dir),
                                       limits=Limits(timeout_s=timeout_s)), settings=settings)
        try:
            res = box.exec([box.python, entry, box.kit_path or ""])
        finally:
            box.terminate()
        preds = _predictions(ws)
        how = f"{entry} re-run in a sandbox (exit {res.returncode}" + (
            ", timed out" if res.timed_out else "") + ")"
        if preds is None:
            # The snapshot's own words: no control character (a terminal escape) goes on.
            lines = [printable(line).strip() for line in res.stderr.splitlines()]
            tail = next((line for line in reversed(lines) if line), "no output")
            return {}, f"{how}: no predictions.json ({tail[:200]})"
        return preds, how


PREDICTIONS_MAX_BYTES = 64 << 20


def _predictions(ws: Path) -> dict[str, object] | None:
    """The run's ``predictions.json``, or None. The sandboxed code wrote the workspace: a
    symlink (to an answer key), FIFO or hard link there is refused, never followed."""
    try:
        text = safe_files.read_text_inside(ws, "predictions.json", PREDICTIONS_MAX_BYTES)
    except (OSError, safe_files.UnsafePath):
        return None
    return parse_predictions(text)
