"""Researcher sandboxes: one small contract (``exec``, ``read_file``, ``write_file``), two kinds.

``make_sandbox(spec)`` gives a bubblewrap sandbox, or a plain process only with
``allow_unsandboxed=True`` (loudly, and with ``sandboxed = False``).
"""

from aarlab.sandbox.base import Sandbox
from aarlab.sandbox.bwrap import BubblewrapSandbox, sandbox_available
from aarlab.sandbox.errors import (
    SandboxError,
    SandboxLimitError,
    SandboxPathError,
    SandboxUnavailableError,
)
from aarlab.sandbox.factory import make_sandbox
from aarlab.sandbox.guard import limits_report
from aarlab.sandbox.process import ProcessSandbox
from aarlab.sandbox.runner import ExecResult
from aarlab.sandbox.spec import Limits, SandboxSpec

__all__ = [
    "BubblewrapSandbox", "ExecResult", "Limits", "ProcessSandbox", "Sandbox", "SandboxError",
    "SandboxLimitError", "SandboxPathError", "SandboxSpec", "SandboxUnavailableError",
    "limits_report", "make_sandbox", "sandbox_available",
]
