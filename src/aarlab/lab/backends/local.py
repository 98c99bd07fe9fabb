"""The default backend: each researcher's sandbox runs on this machine, next to the lab."""

from __future__ import annotations

from aarlab.config import Settings
from aarlab.lab.backends.base import Backend
from aarlab.sandbox.base import Sandbox
from aarlab.sandbox.factory import make_sandbox
from aarlab.sandbox.spec import SandboxSpec


class LocalBackend(Backend):
    name = "local"

    def __init__(self, settings: Settings, *, allow_unsandboxed: bool = False):
        self.settings, self.allow_unsandboxed = settings, allow_unsandboxed

    def sandbox(self, member: str, spec: SandboxSpec, token: str) -> Sandbox:
        return make_sandbox(spec, allow_unsandboxed=self.allow_unsandboxed,
                            settings=self.settings)
