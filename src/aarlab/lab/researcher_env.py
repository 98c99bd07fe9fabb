"""The one contract between the lab and a researcher process: what it is told, typed.

The lab writes it with ``to_env()`` into a sandbox's environment; the researcher reads it back
with ``from_env()``. Paths are the ones *inside* the sandbox. A missing or malformed variable is
an error naming the variable, never a silent default for something the lab must set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aarlab.errors import AarlabError

UNLIMITED = 1_000_000


@dataclass(frozen=True)
class ResearcherEnv:
    token: str
    task: str
    deadline: float  # unix time
    seed: int = 0
    direction: str = "any"
    direction_methods: tuple[str, ...] = ()
    max_experiments: int = UNLIMITED
    max_submissions: int = UNLIMITED
    kit: str = ""  # the main task's kit, inside the sandbox
    socket: str = ""  # the lab's researcher socket, inside the sandbox
    workspace: str = ""
    # Other tasks of a suite lab: {task name: kit path inside the sandbox}; empty for one task.
    suite: Mapping[str, str] = field(default_factory=dict)

    def to_env(self) -> dict[str, str]:
        env = {"AARLAB_TOKEN": self.token, "AARLAB_TASK": self.task,
               "AARLAB_DEADLINE": f"{self.deadline:.3f}", "AARLAB_SEED": str(self.seed),
               "AARLAB_DIRECTION": self.direction,
               "AARLAB_DIRECTION_METHODS": ",".join(self.direction_methods)}
        if self.max_experiments != UNLIMITED:
            env["AARLAB_MAX_EXPERIMENTS"] = str(self.max_experiments)
        if self.max_submissions != UNLIMITED:
            env["AARLAB_MAX_SUBMISSIONS"] = str(self.max_submissions)
        for name, value in (("AARLAB_KIT", self.kit), ("AARLAB_SOCKET", self.socket),
                            ("AARLAB_WORKSPACE", self.workspace)):
            if value:
                env[name] = value
        if self.suite:
            env["AARLAB_SUITE"] = json.dumps(dict(self.suite), sort_keys=True)
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ResearcherEnv:
        env = os.environ if environ is None else environ

        def need(name: str) -> str:
            value = env.get(name)
            if not value:
                raise AarlabError(f"{name}: not set; the lab sets it for every researcher")
            return value

        def number(name: str, kind, default):
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                return kind(raw)
            except ValueError:
                raise AarlabError(f"{name}: expected {kind.__name__}, got {raw!r}") from None

        need("AARLAB_DEADLINE")  # required; ``number`` below checks its form
        suite_raw = env.get("AARLAB_SUITE", "")
        try:
            suite = json.loads(suite_raw) if suite_raw else {}
        except ValueError:
            suite = None
        if not isinstance(suite, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in suite.items()):
            raise AarlabError("AARLAB_SUITE: expected a JSON object {task: kit path}")
        return cls(
            token=need("AARLAB_TOKEN"), task=need("AARLAB_TASK"),
            deadline=number("AARLAB_DEADLINE", float, None),
            seed=number("AARLAB_SEED", int, 0),
            direction=env.get("AARLAB_DIRECTION") or "any",
            direction_methods=tuple(m for m in env.get("AARLAB_DIRECTION_METHODS", "").split(",")
                                    if m),
            max_experiments=number("AARLAB_MAX_EXPERIMENTS", int, UNLIMITED),
            max_submissions=number("AARLAB_MAX_SUBMISSIONS", int, UNLIMITED),
            kit=env.get("AARLAB_KIT", ""), socket=env.get("AARLAB_SOCKET", ""),
            workspace=env.get("AARLAB_WORKSPACE", ""), suite=suite,
        )
