"""Choosing a sandbox: bubblewrap, or the plain process only when the caller says so.

Before anything is mounted, every host path a sandbox would see is checked against the lab's
private places (answer keys, the store, AARLAB_HOME as a whole), so a mistyped kit or workspace
path cannot hand a researcher the labels.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from aarlab.config import Settings
from aarlab.sandbox.base import Sandbox, code_paths
from aarlab.sandbox.bwrap import BubblewrapSandbox, sandbox_available
from aarlab.sandbox.errors import SandboxError, SandboxUnavailableError
from aarlab.sandbox.guard import limits_report
from aarlab.sandbox.process import ProcessSandbox
from aarlab.sandbox.spec import SandboxSpec


def private_paths(settings: Settings) -> tuple[list[Path], list[Path]]:
    """(places no mount may touch, places no mount may contain) for this lab's settings."""
    never = [settings.answer_keys_dir]
    url = settings.database_url
    if url.startswith("sqlite") and "///" in url:
        db = url.split("///", 1)[1]
        if db and db != ":memory:":
            never.append(Path(db))
    return [p.resolve() for p in never], [settings.home.resolve()]


def check_mounts(mounts: dict[str, Path], settings: Settings) -> None:
    """Raise ``SandboxError`` naming the field if a mount reaches a private path."""
    never, no_ancestor = private_paths(settings)
    for field, path in mounts.items():
        p = path.resolve()
        for f in never:
            if p == f or p in f.parents or f in p.parents:
                raise SandboxError(f"{field}: {path} would expose {f} inside the sandbox",
                                   hint="answer keys and the store never enter a sandbox")
        for f in no_ancestor:
            if p == f or p in f.parents:
                raise SandboxError(f"{field}: {path} would expose all of AARLAB_HOME ({f})",
                                   hint="mount the task kit and a workspace, not the home")


_warned: set[str] = set()


def warn_if_unbounded(console: Console | None = None) -> str | None:
    """Say loudly, once per process, when sandboxes cannot be bounded as a whole here."""
    warning = limits_report()["warning"]
    if warning and warning not in _warned:
        _warned.add(warning)
        (console or Console(stderr=True)).print(
            Panel(warning, title="SANDBOX LIMITS", border_style="bold red", style="bold red"))
    return warning


def make_sandbox(spec: SandboxSpec, *, allow_unsandboxed: bool = False,
                 settings: Settings | None = None, console: Console | None = None) -> Sandbox:
    """A ``BubblewrapSandbox`` if bubblewrap works here; else a ``ProcessSandbox`` if allowed.

    Raises ``SandboxUnavailableError`` (with bubblewrap's reason) when it does not work and
    ``allow_unsandboxed`` is False, and ``SandboxError`` when a mount reaches a private path.
    """
    mounts: dict[str, Path] = {"workspace": spec.workspace}
    if spec.kit is not None:
        mounts["kit"] = spec.kit
    if spec.socket is not None:
        mounts["socket"] = spec.socket
    mounts |= {f"extra_ro[{i}]": p for i, p in enumerate(spec.extra_ro)}
    mounts |= {f"suite[{task}]": p for task, p in spec.suite.items()}
    ok, reason = sandbox_available()
    if ok:
        mounts |= {f"code[{i}]": p for i, p in enumerate(code_paths())}
    check_mounts(mounts, settings or Settings())
    if ok:
        warn_if_unbounded(console)
        return BubblewrapSandbox(spec)
    if not allow_unsandboxed:
        raise SandboxUnavailableError(
            f"cannot sandbox researcher {spec.name!r}: {reason}",
            hint="install bubblewrap (apt-get install -y bubblewrap) or pass the explicit "
                 "unsandboxed flag to run researchers as plain processes")
    return ProcessSandbox(spec, console=console)
