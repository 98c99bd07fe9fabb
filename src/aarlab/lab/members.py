"""How a lab member's thread runs its researcher: one small protocol, one runner per policy kind.

The orchestrator picks a runner by the policy (``search``, ``llm:…``), checked by ``check_policy``
(the one check, made at ``Lab.create`` before anything is written), and hands it a
``MemberContext``: the lab's public surface a runner may use, nothing else of the lab.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from aarlab.client.lab import newest_part
from aarlab.errors import AarlabError
from aarlab.lab import notebooks
from aarlab.lab.researcher_env import UNLIMITED, ResearcherEnv
from aarlab.lab.tables import LabEvent
from aarlab.researchers.llm.policy import parse_policy
from aarlab.sandbox.spec import Limits, SandboxSpec
from aarlab.w2s.backends.lm_models import sandbox_mounts

# What every researcher process gets besides its ResearcherEnv: one thread per BLAS pool, no
# network for the model libraries.
PROCESS_ENV = {"TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


class LabApi(Protocol):
    """The lab's methods and state a member runner uses (``aarlab.lab.orchestrator.Lab``)."""

    options: Any  # LabOptions
    store: Any
    stop_event: threading.Event
    lab_id: int

    def socket_for(self, m: Any) -> Path: ...
    @property
    def lab_dir(self) -> Path: ...
    def open_sandbox(self, m: Any, spec: SandboxSpec) -> Any: ...
    def set_member(self, m: Any, **fields) -> None: ...
    def record_failure(self, m: Any, error: str, failures: int) -> None: ...
    def on_warning(self, text: str) -> None: ...


@dataclass(frozen=True)
class MemberContext:
    lab: LabApi
    member: Any  # orchestrator.MemberRuntime: name, token, workspace, direction, policy, ...
    kit: Path
    deadline: float

    def researcher_env(self) -> ResearcherEnv:
        """What this member's researcher is told (paths inside the sandbox come later)."""
        m, opts = self.member, self.lab.options
        return ResearcherEnv(
            token=m.token, task=opts.task, deadline=self.deadline,
            seed=opts.seed + m.researcher_id, direction=m.direction.name,
            direction_methods=tuple(m.direction.methods),
            max_experiments=opts.max_experiments or UNLIMITED,
            max_submissions=UNLIMITED if opts.max_submissions is None else opts.max_submissions)


class MemberRunner(Protocol):
    def run(self, ctx: MemberContext) -> None:
        """Run the member's researcher until the deadline or the lab's stop; record its state."""


class SearchMember:
    """The offline search researcher, a process in the sandbox; restarted when it dies early."""

    def run(self, ctx: MemberContext) -> None:
        lab, m, deadline = ctx.lab, ctx.member, ctx.deadline
        opts = lab.options
        m.workspace.mkdir(parents=True, exist_ok=True)
        told = ctx.researcher_env()
        lm_ro, lm_env = sandbox_mounts(ctx.kit)  # an LM task: its strong LM, read-only
        failures = 0
        while not lab.stop_event.is_set() and time.time() < deadline - 2:
            env = {**told.to_env(), **PROCESS_ENV,
                   "OMP_NUM_THREADS": str(opts.threads_per_researcher)}
            timeout = max(5.0, deadline - time.time() + 20)
            spec = SandboxSpec(name=m.name, workspace=m.workspace, kit=ctx.kit,
                               socket=lab.socket_for(m), env={**env, **lm_env}, extra_ro=lm_ro,
                               limits=Limits(timeout_s=timeout, cpu_s=int(timeout * 2) + 60,
                                             memory_bytes=opts.memory_bytes))
            try:
                sandbox = lab.open_sandbox(m, spec)
            except AarlabError as e:  # e.g. no node with room yet, or a node without bwrap
                failures += 1
                lab.record_failure(m, e.message, failures)
                continue
            m.sandbox = sandbox
            # Where the kit, socket and workspace are, known once the sandbox exists.
            inside = replace(told, kit=sandbox.kit_path, socket=sandbox.socket_path,
                             workspace=sandbox.workspace_path).to_env()
            lab.set_member(m, status="running", sandboxed=sandbox.sandboxed)
            result = sandbox.exec([sandbox.python, "-m", "aarlab.researchers.search"],
                                  env=inside, timeout=timeout)
            if result.limit:  # stopped by a per-sandbox limit: shown in the dashboard's events
                with lab.store.session() as s:
                    s.add(LabEvent(researcher_id=m.researcher_id, kind="sandbox_limit",
                                   payload={"limit": result.limit}))
            if lab.stop_event.is_set() or time.time() >= deadline - 2:
                break
            if result.returncode == 0:
                break  # it spent its own budget (experiments or submissions)
            failures += 1
            lab.record_failure(m, result.stderr or result.stdout, failures)
        lab.set_member(m, status="done")


class LlmMember:
    """An LLM researcher: its loop runs here, in the lab; its tools in a sandbox. Its notebook
    is whatever the sandbox holds at ``notebook.md``; a ``NotebookPublisher`` hands it to the
    lab while the loop runs."""

    def run(self, ctx: MemberContext) -> None:
        from aarlab.researchers.llm.member import run_llm_member  # provider SDKs: only when used

        with NotebookPublisher(ctx.lab.store, ctx.member):
            run_llm_member(ctx.lab, ctx.member, ctx.kit, ctx.deadline, ctx.researcher_env())


class NotebookPublisher:
    """Publishes a member's ``notebook.md`` every ``every`` seconds and once at the end.

    Read through the sandbox contract (``read_file``: no symlink followed, never outside the
    workspace, on whichever node the sandbox runs), then checked and kept by
    ``aarlab.lab.notebooks.publish``, the function behind the researchers' own publish route.
    A refusal is told once as an ``error`` event; nothing of the file is.
    """

    NAME = "notebook.md"

    def __init__(self, store: Any, member: Any, every: float = 10.0):
        self.store, self.member, self.every = store, member, every
        self.stop = threading.Event()
        self.refused: str | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True,
                                       name=f"notebook-{member.name}")

    def __enter__(self) -> NotebookPublisher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=self.every + 30)
        self.publish()  # the last word

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.publish()

    def publish(self) -> None:
        sandbox = getattr(self.member, "sandbox", None)
        if sandbox is None:
            return
        try:
            data = newest_part(sandbox.read_file(self.NAME, text=False))
            # Not rate-limited: this thread's timer (``every``) sets the pace, not the
            # researcher (whose own publishes over HTTP count in its writes_per_minute).
            notebooks.publish(self.store, self.member.researcher_id, self.NAME, data)
        except FileNotFoundError:
            return
        except Exception as e:  # noqa: BLE001 - a notebook must never stop the member
            why = e.message if isinstance(e, AarlabError) else type(e).__name__
            self._refuse(why)
            return
        self.refused = None

    def _refuse(self, why: str) -> None:
        if why == self.refused:
            return
        self.refused = why
        with self.store.session() as s:
            s.add(LabEvent(researcher_id=self.member.researcher_id, kind="error",
                           payload={"text": f"{self.NAME} not published: {why}"}))


RUNNERS: dict[str, type[MemberRunner]] = {"search": SearchMember, "llm": LlmMember}


def check_policy(policy: str, field: str = "--researcher") -> str:
    """The runner kind (a key of ``RUNNERS``) of a valid policy; a one-line ``AarlabError``
    naming ``field`` otherwise. ``parse_policy`` is the one validation (the CLI calls it too);
    ``Lab.create`` checks every policy here before it writes anything, so no member's thread
    is the first to find a bad one."""
    return "search" if parse_policy(policy, field) is None else "llm"


def runner_for(policy: str) -> MemberRunner:
    """The runner for a policy (``llm:openai:gpt-x`` -> the LLM runner)."""
    return RUNNERS[check_policy(policy, "policy")]()
