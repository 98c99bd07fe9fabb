"""The backend contract, its options, and the choice between local and Ray."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aarlab.sandbox.base import Sandbox
from aarlab.sandbox.spec import SandboxSpec


class BackendOptions(BaseModel):
    """How to run a lab's researchers. Only these may change when a lab is resumed."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray", "auto"] = Field(
        "local", description="local: threads and sandboxes here; ray: one Ray actor per "
                             "researcher; auto: ray when a cluster is reachable, else local.")
    address: str | None = Field(
        None, description="Ray cluster: 'auto', 'HOST:PORT' or 'ray://HOST:PORT'; none starts "
                          "a Ray instance on this machine.")
    advertise_host: str | None = Field(
        None, description="Address the cluster's nodes use to reach the lab server (default: "
                          "this machine's address as Ray sees it).")
    server_port: int = Field(0, ge=0, le=65535,
                             description="First TCP port for nodes: researcher i's listener is "
                                         "port + i; 0 picks free ones.")
    kit_url: str | None = Field(
        None, description="A kit on a shared filesystem (fsspec URL or path); default: nodes "
                          "download it from the lab server.")
    cpus_per_researcher: float = Field(1.0, gt=0, description="Ray resources per actor.")
    gpus_per_researcher: float = Field(0.0, ge=0, description="Ray GPUs per actor: its "
                                       "experiments (e.g. causal-LM students) run on them.")
    max_actor_restarts: int = Field(-1, ge=-1, description="Ray's own restarts; -1: always.")
    ray_cpus: int | None = Field(None, ge=1, description="CPUs of a Ray started here.")


class Backend(ABC):
    """Turns a researcher's sandbox spec into a sandbox, here or on some node."""

    name: str = "local"

    def connect(self, researchers: int) -> None:  # noqa: B027 - a hook; most backends need none
        """Reach (or start) what runs the researchers, before the lab server starts."""

    def tcp_listeners(self, members: Sequence[str] = ()) -> list[tuple[str, int]]:
        """(host, port) pairs the lab server must also serve the researcher API on for this
        backend's nodes, given the lab's members (each may get one of its own)."""
        return []

    def start(self, lab_dir: Path, task: str) -> None:  # noqa: B027 - a hook; most backends need none
        """Called once the lab server is up, before any researcher starts."""

    @abstractmethod
    def sandbox(self, member: str, spec: SandboxSpec, token: str) -> Sandbox:
        """A sandbox for ``member`` built from ``spec``; ``token`` is the member's own."""

    def placement(self, member: str) -> dict:
        """Where ``member`` runs, for telemetry."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - a hook; most backends need none
        """Release what the backend started (actors, a Ray instance)."""
