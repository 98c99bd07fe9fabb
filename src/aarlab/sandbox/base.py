"""The sandbox contract: three working methods, each with its limits and its exceptions.

A sandbox is a researcher's only place to run code. Every ``exec`` is a fresh confinement
(processes never outlive their exec); the workspace is a host directory, so files persist across
execs and across restarts of the researcher. Host code must touch a workspace only through
``read_file`` / ``write_file``, which never follow a symlink planted by the researcher.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import aarlab
from aarlab.sandbox import files, workspace
from aarlab.sandbox.errors import SandboxError
from aarlab.sandbox.guard import ExecGuard
from aarlab.sandbox.runner import ExecResult, run_limited
from aarlab.sandbox.spec import SandboxSpec, check_env


@dataclass(frozen=True)
class Launch:
    """Host argv and cwd for one exec; fds passed to it, and fds the lab holds open meanwhile.

    Both kinds of fd are closed by ``exec`` once the command is done.
    """

    argv: list[str]
    cwd: str | None = None
    pass_fds: tuple[int, ...] = ()
    hold_fds: tuple[int, ...] = ()
    stage: tuple[tuple[str, str], ...] = ()  # see runner.Confine.stage


def code_paths() -> list[Path]:
    """Host paths a sandboxed Python needs: the interpreter, the virtualenv, aarlab's source."""
    source = Path(aarlab.__file__).resolve().parent.parent
    paths = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), source]
    out: list[Path] = []
    for p in paths:
        if not any(p == q or q in p.parents for q in out):
            out = [q for q in out if p not in q.parents] + [p]
    return out


class Sandbox(ABC):
    """One researcher's confinement. ``sandboxed`` is False only for the explicit fallback."""

    sandboxed: bool = True

    def __init__(self, spec: SandboxSpec):
        self.spec = spec
        spec.workspace.mkdir(parents=True, exist_ok=True, mode=0o700)
        if spec.workspace.is_symlink() or not spec.workspace.is_dir():
            raise SandboxError(f"workspace {spec.workspace} must be a real directory")
        # The host uid its commands run as (None: this process's own), and what it owns.
        self.host_ids = self._host_ids()
        workspace.prepare(spec.workspace, self.host_ids, 4 * spec.limits.workspace_files)
        self._live: set[threading.Event] = set()
        self._lock = threading.Lock()

    # Paths as the commands inside see them.
    @property
    @abstractmethod
    def workspace_path(self) -> str: ...

    @property
    @abstractmethod
    def kit_path(self) -> str | None: ...

    @property
    @abstractmethod
    def socket_path(self) -> str | None: ...

    @property
    def suite_paths(self) -> dict[str, str]:
        """A suite lab's other kits as the commands see them ({task: path}); here the host
        paths, as a plain process sees them (``BubblewrapSandbox`` mounts them elsewhere)."""
        return {task: str(p) for task, p in self.spec.suite.items()}

    @property
    def python(self) -> str:
        """The interpreter to run inside (the lab's own virtualenv, read-only)."""
        return str(Path(sys.prefix) / "bin" / "python")

    def exec(self, cmd: list[str], *, input: str | bytes | None = None, cwd: str | None = None,
             env: dict[str, str] | None = None, timeout: float | None = None) -> ExecResult:
        """Run ``cmd`` (argv, no shell) in the sandbox and return its exit code and output.

        Args:
            cmd: program and arguments; use ``["sh", "-c", "..."]`` for a shell.
            input: bytes or text fed to stdin (stdin is empty otherwise).
            cwd: working directory, relative to or inside the workspace (default: the workspace).
            env: extra variables; only ``AARLAB_*`` and a small allow-list (see ``spec``).
            timeout: wall-clock seconds (default and maximum: ``spec.limits.timeout_s``).

        Limits: at most ``limits.output_bytes`` (1 MiB) of each of stdout and stderr is kept;
        the rest is read and dropped (``stdout_truncated``). On timeout every process of the exec
        is killed (``timed_out=True``); ``terminate()`` does the same (``cancelled=True``).
        Each process has ``limits.cpu_s`` CPU seconds (then SIGXCPU/SIGKILL),
        ``limits.memory_bytes`` of address space (allocations fail, e.g. ``MemoryError``) and
        may write files up to ``limits.file_bytes``. The exec as a whole (where cgroups work,
        see ``limits_report``) has ``limits.pids`` processes, ``limits.memory_cap`` of memory
        and ``limits.cpus`` cores; its workspace holds at most ``limits.workspace_bytes``.
        Hitting one of these stops the exec: ``limit`` says which, and so does a last line of
        stderr. Nothing started by an exec survives it.

        The command's own failure (non-zero exit, timeout, a limit) is reported in the result,
        never raised. Raises ``SandboxError`` for a bad ``cmd``/``env``/``cwd`` or when the
        sandbox cannot start (e.g. the lab socket is missing).
        """
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise SandboxError("cmd: expected a non-empty list of strings (argv)",
                               hint='e.g. ["python", "train.py"]')
        limit = self.spec.limits.timeout_s
        if timeout is not None and timeout <= 0:
            raise SandboxError(f"timeout: expected seconds > 0, got {timeout}")
        data = input.encode() if isinstance(input, str) else input
        full_env = self._base_env() | dict(self.spec.env) | check_env(dict(env or {}))
        launch = self._command(cmd, self._inside_cwd(cwd))
        cancel = threading.Event()
        with self._lock:
            self._live.add(cancel)
        guard = None
        try:
            guard = ExecGuard(self.spec.name, self.spec.workspace, self.spec.limits,
                              self.host_ids)
            # The command inherits exactly this environment (bwrap passes its own on).
            result = run_limited(launch.argv, env=full_env, cwd=launch.cwd, stdin=data,
                                 timeout=min(timeout or limit, limit), limits=self.spec.limits,
                                 pass_fds=launch.pass_fds, cancel=cancel,
                                 confine=dataclasses.replace(guard.confine,
                                                             stage=launch.stage))
            return guard.finish(result)
        finally:
            with self._lock:
                self._live.discard(cancel)
            for fd in (*launch.pass_fds, *launch.hold_fds):
                os.close(fd)
            if guard is not None:
                guard.close()

    def read_file(self, path: str, text: bool = True, max_bytes: int | None = None
                  ) -> str | bytes:
        """Read a workspace file (relative, or absolute under ``workspace_path``).

        Limits: files over ``limits.transfer_bytes`` (100 MiB), or over ``max_bytes`` when
        given, raise ``SandboxLimitError``.
        Raises ``FileNotFoundError``, ``IsADirectoryError``, ``SandboxPathError`` if the path
        leaves the workspace or goes through a symlink, ``UnicodeDecodeError`` if ``text`` and
        the file is not UTF-8.
        """
        parts = files.relative_parts(path, self.workspace_path)
        limit = self.spec.limits.transfer_bytes
        data = files.read_beneath(self.spec.workspace, parts,
                                  limit if max_bytes is None else min(limit, max_bytes), path)
        return data.decode("utf-8") if text else data

    def write_file(self, path: str, contents: str | bytes) -> None:
        """Write a workspace file atomically, creating parent directories.

        Limits: contents over ``limits.transfer_bytes`` (100 MiB) raise ``SandboxLimitError``.
        Raises ``SandboxPathError`` if the path leaves the workspace or goes through a symlink,
        ``IsADirectoryError`` if it names a directory.
        """
        parts = files.relative_parts(path, self.workspace_path)
        data = contents.encode("utf-8") if isinstance(contents, str) else bytes(contents)
        files.write_beneath(self.spec.workspace, parts, data, self.spec.limits.transfer_bytes,
                            path, owner=self.host_ids)

    def terminate(self) -> None:
        """Kill every exec of this sandbox now running (e.g. when the lab shuts down)."""
        with self._lock:
            for cancel in self._live:
                cancel.set()

    # --- for implementations ---

    def _host_ids(self) -> tuple[int, int] | None:
        """(uid, gid) the commands run as on the host; None: as this process."""
        return None

    @abstractmethod
    def _command(self, cmd: list[str], cwd: str) -> Launch:
        """How to start ``cmd`` confined, with ``cwd`` as the command sees it."""

    def _base_env(self) -> dict[str, str]:
        env = {
            "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": self.workspace_path,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "AARLAB_WORKSPACE": self.workspace_path,
        }
        if self.kit_path:
            env["AARLAB_KIT"] = self.kit_path
        if self.socket_path:
            env["AARLAB_SOCKET"] = self.socket_path
        if self.suite_paths:  # the format ResearcherEnv.from_env reads
            env["AARLAB_SUITE"] = json.dumps(self.suite_paths, sort_keys=True)
        return env

    def _inside_cwd(self, cwd: str | None) -> str:
        if cwd is None:
            return self.workspace_path
        parts = files.relative_parts(cwd, self.workspace_path) if cwd not in (
            ".", self.workspace_path) else ()
        return str(Path(self.workspace_path, *parts))
