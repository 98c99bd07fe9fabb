"""The fallback: a plain subprocess. NOT a sandbox; used only when asked for explicitly.

It keeps what a plain process can keep (a clean environment, rlimits, the wall clock that kills
the whole process group, cwd in the workspace, the same file API) and loses everything else:
the command can read any file the lab can, open the network and signal the lab's processes.
It announces itself on stderr and through ``sandboxed = False`` for the dashboard.
"""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel

from aarlab.sandbox.base import Launch, Sandbox
from aarlab.sandbox.spec import SandboxSpec

WARNING = ("researcher {name!r} runs WITHOUT a sandbox: its code can read the answer key, the "
           "store and API keys on this machine, and reach the network. Use this only for code "
           "you trust; install bubblewrap to confine it.")


class ProcessSandbox(Sandbox):
    """Same API as ``BubblewrapSandbox``; paths inside are the host paths."""

    sandboxed = False

    def __init__(self, spec: SandboxSpec, console: Console | None = None):
        super().__init__(spec)
        self.warning = WARNING.format(name=spec.name)
        (console or Console(stderr=True)).print(
            Panel(self.warning, title="UNSANDBOXED", border_style="bold red", style="bold red"))

    @property
    def workspace_path(self) -> str:
        return str(self.spec.workspace)

    @property
    def kit_path(self) -> str | None:
        return str(self.spec.kit) if self.spec.kit is not None else None

    @property
    def socket_path(self) -> str | None:
        return str(self.spec.socket) if self.spec.socket is not None else None

    def _command(self, cmd: list[str], cwd: str) -> Launch:
        return Launch(argv=list(cmd), cwd=cwd)
