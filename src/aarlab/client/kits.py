"""Client calls for task kits: their digest, and the archive streamed to a file.

``aarlab.lab.kit_cache.fetch_kit`` builds on these to keep one verified copy per node.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import httpx

from aarlab.client.base import LabError, raise_for

_CHUNK = 1 << 20


class KitAPI:
    """Mixin over ``BaseClient`` (needs ``get`` and ``http``)."""

    def kit_digest(self, task: str) -> dict:
        """``{"task", "sha256", "bytes"}`` of the task's kit archive on the server."""
        return self.get(f"/v1/tasks/{quote(task, safe='')}/kit/digest")

    def download_kit(self, task: str, dest: Path) -> str:
        """Stream the kit archive into ``dest`` (created or truncated); return its sha256.

        The caller compares the digest with ``kit_digest`` before trusting the bytes.
        """
        h = hashlib.sha256()
        try:
            with self.http.stream("GET", f"/v1/tasks/{quote(task, safe='')}/kit") as resp:
                if not resp.is_success:
                    resp.read()
                    raise_for(resp)
                with open(dest, "wb") as f:
                    for chunk in resp.iter_bytes(_CHUNK):
                        h.update(chunk)
                        f.write(chunk)
        except httpx.TransportError as e:
            raise LabError(0, f"kit {task!r}: download from {self.http.base_url} failed: {e}",
                           hint="is the lab server running? retry") from e
        return h.hexdigest()
