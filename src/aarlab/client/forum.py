"""Client calls for the forum and code snapshots."""

from __future__ import annotations

import io
from pathlib import Path

import httpx

from aarlab.archive import ArchiveInfo, ArchiveLimits, extract_archive, tar_writer
from aarlab.client.base import LabError, raise_for

# Never worth sharing, and often what pushes a workspace over the snapshot limits.
SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache",
             ".pytest_cache", ".ruff_cache"}


class ForumAPI:
    """Mixin over ``BaseClient`` (needs ``request``/``get``/``post``)."""

    # --- findings -----------------------------------------------------------------------------

    def post_finding(self, kind: str, title: str, body: str = "", *, tags: list[str] = (),
                     task: str | None = None, submission_id: int | None = None,
                     snapshot_id: str | None = None) -> dict:
        """A ``result`` needs ``submission_id`` (one of yours); its PGR comes from the server."""
        payload = {"kind": kind, "title": title, "body": body, "tags": list(tags), "task": task,
                   "submission_id": submission_id, "snapshot_id": snapshot_id}
        return self.post("/v1/forum/findings", json=payload)

    def findings(self, q: str | None = None, *, kind: str | None = None,
                 author: str | None = None, task: str | None = None, tag: str | None = None,
                 sort: str | None = None, limit: int = 20, offset: int = 0) -> dict:
        """``{"items": [...], "total": n, ...}``; ``sort`` is new, top, pgr or relevance."""
        params = {k: v for k, v in dict(q=q, kind=kind, author=author, task=task, tag=tag,
                                         sort=sort, limit=limit, offset=offset).items()
                  if v is not None}
        return self.get("/v1/forum/findings", params=params)

    def finding(self, finding_id: int) -> dict:
        """One finding with every revision and its comments."""
        return self.get(f"/v1/forum/findings/{finding_id}")

    def edit_finding(self, finding_id: int, *, title: str | None = None,
                     body: str | None = None, tags: list[str] | None = None) -> dict:
        edit = {k: v for k, v in dict(title=title, body=body, tags=tags).items() if v is not None}
        return self.post(f"/v1/forum/findings/{finding_id}/revisions", json=edit)

    def comment(self, finding_id: int, body: str) -> dict:
        return self.post(f"/v1/forum/findings/{finding_id}/comments", json={"body": body})

    def vote(self, finding_id: int, value: int) -> dict:
        """+1, -1, or 0 to withdraw; one vote per researcher per finding."""
        return self.request("PUT", f"/v1/forum/findings/{finding_id}/vote",
                            json={"value": value})

    def hide_finding(self, finding_id: int, reason: str) -> dict:
        """Admin token only; recorded in the audit log."""
        return self.post(f"/v1/forum/findings/{finding_id}/hide", json={"reason": reason})

    def unhide_finding(self, finding_id: int, reason: str) -> dict:
        return self.post(f"/v1/forum/findings/{finding_id}/unhide", json={"reason": reason})

    # --- snapshots ----------------------------------------------------------------------------

    def upload_snapshot(self, archive: bytes | str | Path, *, parent: str | None = None,
                        submission_id: int | None = None, label: str | None = None) -> dict:
        """Upload a tar.gz/zip (bytes or a file), or a workspace directory packed on the fly."""
        if isinstance(archive, (str, Path)):
            path = Path(archive)
            archive = pack_workspace(path) if path.is_dir() else path.read_bytes()
        params = {k: v for k, v in dict(parent=parent, submission_id=submission_id,
                                        label=label).items() if v is not None}
        return self.post("/v1/snapshots", content=archive, params=params,
                         headers={"Content-Type": "application/octet-stream"})

    def snapshots(self, *, uploader: str | None = None, submission_id: int | None = None,
                  limit: int = 50, offset: int = 0) -> list[dict]:
        params = {k: v for k, v in dict(uploader=uploader, submission_id=submission_id,
                                        limit=limit, offset=offset).items() if v is not None}
        return self.get("/v1/snapshots", params=params)

    def snapshot(self, snapshot_id: str) -> dict:
        return self.get(f"/v1/snapshots/{snapshot_id}")

    def download_snapshot(self, snapshot_id: str) -> bytes:
        try:
            resp = self.http.get(f"/v1/snapshots/{snapshot_id}/archive")
        except httpx.TransportError as e:
            raise LabError(0, f"cannot reach the lab at {self.http.base_url}: {e}") from e
        raise_for(resp)  # the body is the archive, not JSON
        return resp.content

    def extract_snapshot(self, snapshot_id: str, target: str | Path,
                         limits: ArchiveLimits | None = None) -> ArchiveInfo:
        """Download and extract with the safe helper into ``target`` (absent or empty)."""
        info = extract_archive(self.download_snapshot(snapshot_id), Path(target), limits)
        if info.sha256 != snapshot_id:  # content addressing makes tampering visible
            raise ValueError(f"snapshot {snapshot_id}: downloaded bytes hash to {info.sha256}")
        return info

    def link_snapshot(self, snapshot_id: str, submission_id: int) -> dict:
        return self.post(f"/v1/snapshots/{snapshot_id}/links",
                         json={"submission_id": submission_id})


def pack_workspace(root: Path, skip: set[str] = SKIP_DIRS) -> bytes:
    """A deterministic tar.gz of ``root``'s regular files (links and ``skip`` dirs left out).

    Deterministic (sorted names, zeroed times and owners) so the same workspace gives the same
    sha256, hence the same snapshot id.
    """
    buf = io.BytesIO()
    with tar_writer(buf) as add:
        for path in sorted(_files(root, skip)):
            st = path.stat()
            with path.open("rb") as f:
                add(path.relative_to(root).as_posix(), f, st.st_size,
                    0o755 if st.st_mode & 0o111 else 0o644)
    return buf.getvalue()


def _files(root: Path, skip: set[str]) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part in skip for part in rel) or p.is_symlink() or not p.is_file():
            continue
        out.append(p)
    return out


__all__ = ["ForumAPI", "pack_workspace"]
