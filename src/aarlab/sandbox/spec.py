"""What a sandbox is made of: its host paths, the variables it may see, and its limits.

The environment inside a sandbox is built from nothing: a fixed allow-list plus ``AARLAB_*``
variables the lab passes on purpose (socket path, the researcher's own token). Names that would
hand a researcher the lab's own powers are refused even with the ``AARLAB_`` prefix.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aarlab.sandbox.errors import SandboxError

MiB = 1 << 20
GiB = 1 << 30

# Variables a command may receive besides AARLAB_*: locale, Python and thread-count knobs only.
ALLOWED_ENV = frozenset({
    "LANG", "LC_ALL", "TZ", "TERM",
    "PYTHONUNBUFFERED", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM",
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
    "CUDA_VISIBLE_DEVICES",  # which of the devices shown to it a command may use
})
# AARLAB_* names that point at the lab's secrets or its private files.
DENIED_ENV = frozenset({
    "AARLAB_ADMIN_TOKEN", "AARLAB_DB_URL", "AARLAB_ANSWER_KEY_ROOT", "AARLAB_SOURCES_ROOT",
})
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
SUITE_TASK = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_env(env: dict[str, str], field: str = "env") -> dict[str, str]:
    """Return ``env`` if every name may enter a sandbox, else raise naming the first bad one."""
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise SandboxError(f"{field}: bad variable name {name!r}",
                               hint="expected upper-case letters, digits and _")
        if name in DENIED_ENV:
            raise SandboxError(f"{field}: {name} must never enter a sandbox",
                               hint="it would give a researcher the lab's own access")
        if not (name.startswith("AARLAB_") or name in ALLOWED_ENV):
            raise SandboxError(f"{field}: {name} is not allowed inside a sandbox",
                               hint=f"allowed: AARLAB_* or one of {sorted(ALLOWED_ENV)}")
        if not isinstance(value, str) or "\0" in value:
            raise SandboxError(f"{field}: {name} must be a string without NUL bytes")
    return env


class Limits(BaseModel):
    """Limits of one exec: per process (rlimits) and for the whole sandbox together.

    The sandbox-wide ones (``pids``, ``sandbox_memory_bytes``, ``cpus``) are cgroup limits and
    hold only where cgroups can be used (see ``aarlab.sandbox.limits_report``); the workspace
    quota and the tmpfs sizes hold everywhere bubblewrap runs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(600.0, gt=0, description="Wall clock per exec; kills the tree.")
    cpu_s: int = Field(3600, ge=1, description="RLIMIT_CPU per process, seconds.")
    memory_bytes: int = Field(4 * GiB, ge=64 * MiB, description="RLIMIT_AS per process.")
    file_bytes: int = Field(2 * GiB, ge=MiB, description="RLIMIT_FSIZE: largest file written.")
    output_bytes: int = Field(MiB, ge=1024, description="Kept per output stream of an exec.")
    transfer_bytes: int = Field(100 * MiB, ge=1024,
                                description="Largest file read_file/write_file moves.")
    tmp_bytes: int = Field(512 * MiB, ge=MiB, description="Size of the private tmpfs /tmp.")
    shm_bytes: int = Field(64 * MiB, ge=MiB,
                           description="Size of /dev/shm; the rest of /dev is read-only.")
    pids: int = Field(1024, ge=8, description="Processes and threads of the sandbox together.")
    sandbox_memory_bytes: int | None = Field(
        None, ge=32 * MiB, description="Resident memory (tmpfs pages too) of the whole "
                                       "sandbox; None: the same as memory_bytes.")
    cpus: float | None = Field(None, gt=0, description="CPU share of the whole sandbox, in "
                                                       "cores; None: a fair share, no cap.")
    workspace_bytes: int = Field(8 * GiB, ge=MiB, description="Disk the workspace may use; "
                                 "past it the exec is stopped.")
    workspace_files: int = Field(200_000, ge=16, description="Entries the workspace may hold.")

    @property
    def memory_cap(self) -> int:
        """Memory of the whole sandbox (cgroup ``memory.max``)."""
        return self.sandbox_memory_bytes or self.memory_bytes


class SandboxSpec(BaseModel):
    """Host side of one researcher's sandbox.

    ``workspace`` is created if missing and survives between execs and restarts; ``kit`` is
    mounted read-only; ``socket`` is the lab's Unix socket, the only way out; ``extra_ro`` are
    further read-only directories (e.g. a model cache), mounted at the same path; ``suite`` are
    the other kits of a suite lab, read-only at ``/suite/<task>``; ``devices``
    are device nodes (a GPU a Ray actor was given) shown at the same path.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    workspace: Path
    kit: Path | None = None
    socket: Path | None = None
    env: dict[str, str] = Field(default_factory=dict)
    extra_ro: tuple[Path, ...] = ()
    # A suite lab's other task kits, {task: host kit dir}: each read-only at /suite/<task>.
    suite: dict[str, Path] = Field(default_factory=dict)
    devices: tuple[Path, ...] = Field((), description="Device nodes shown read-write (GPUs).")
    limits: Limits = Field(default_factory=Limits)

    @field_validator("workspace", "kit", "socket")
    @classmethod
    def _absolute(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(v).expanduser().absolute()

    @field_validator("kit")
    @classmethod
    def _kit_is_dir(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_dir():
            raise ValueError(f"expected an existing task kit directory, got {v}")
        return v

    @field_validator("extra_ro")
    @classmethod
    def _extra_dirs(cls, v: tuple[Path, ...]) -> tuple[Path, ...]:
        out = tuple(Path(p).expanduser().absolute() for p in v)
        for p in out:
            if not p.is_dir():
                raise ValueError(f"expected an existing directory, got {p}")
        return out

    @field_validator("suite")
    @classmethod
    def _suite(cls, v: dict[str, Path]) -> dict[str, Path]:
        out = {}
        for task, kit in v.items():
            if not SUITE_TASK.match(task):  # it becomes a path inside: no '/' or '..'
                raise ValueError(f"suite: bad task name {task!r}, expected "
                                 "[a-z0-9][a-z0-9_-]*, at most 64 characters")
            p = Path(kit).expanduser().absolute()
            if not p.is_dir():
                raise ValueError(f"suite[{task}]: expected an existing task kit directory, "
                                 f"got {p}")
            out[task] = p
        return out

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: tuple[Path, ...]) -> tuple[Path, ...]:
        for p in v:
            if Path("/dev") not in Path(p).parents or ".." in Path(p).parts:
                raise ValueError(f"expected a device node under /dev, got {p}")
        return tuple(Path(p) for p in v)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        try:
            return check_env(v)
        except SandboxError as e:
            raise ValueError(str(e)) from None
