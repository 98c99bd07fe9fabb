"""What the sandbox raises. Every one is an ``AarlabError``: one line, no traceback in the CLI."""

from __future__ import annotations

from aarlab.errors import AarlabError


class SandboxError(AarlabError):
    """The sandbox itself failed (bad spec, cannot start); never the command's own failure."""


class SandboxUnavailableError(SandboxError):
    """bubblewrap cannot run here and the unsandboxed fallback was not allowed."""


class SandboxPathError(SandboxError):
    """A path leaves the workspace (absolute elsewhere, ``..``, or through a symlink)."""


class SandboxLimitError(SandboxError):
    """A file is larger than the sandbox's transfer limit."""
