"""Build each kind of sandbox over a fresh workspace; bubblewrap only where it really works."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from aarlab.sandbox import BubblewrapSandbox, Limits, ProcessSandbox, SandboxSpec
from aarlab.sandbox import sandbox_available as _available

BWRAP_OK, BWRAP_REASON = _available()


@pytest.fixture(params=["bwrap", "process"])
def make(request, tmp_path):
    """``make(**spec_fields)`` -> a sandbox of the parametrised kind; workspace in tmp_path."""
    if request.param == "bwrap" and not BWRAP_OK:
        pytest.skip(BWRAP_REASON)

    def build(**fields):
        fields.setdefault("name", "r1")
        fields.setdefault("workspace", tmp_path / "ws")
        fields.setdefault("limits", Limits(timeout_s=60))
        spec = SandboxSpec(**fields)
        if request.param == "bwrap":
            return BubblewrapSandbox(spec)
        return ProcessSandbox(spec, console=Console(file=io.StringIO()))

    return build
