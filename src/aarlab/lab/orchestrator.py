"""The lab: one server, N researchers in sandboxes, budgets, restarts, and a report at the end.

The loop is deliberately plain: a thread per researcher runs its sandboxed process and restarts
it if it dies before the budget is spent; the main thread redraws a table and records how long
the lab has run. Where a sandbox runs (this machine, or a Ray actor on some node) is the
backend's business only (``aarlab.lab.backends``): the lab logic is the same for both.

Everything that must survive a ``kill -9`` of the lab is in the store (the lab row, its members,
their submissions, findings and telemetry) or in the researchers' workspaces (their notebooks),
so ``--resume`` picks up the same researchers where they stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from aarlab import redact
from aarlab.config import Settings
from aarlab.errors import AarlabError
from aarlab.lab.backends import Backend, BackendOptions, make_backend
from aarlab.lab.directions import Direction, direction_for, load_directions
from aarlab.lab.members import MemberContext, check_policy, runner_for
from aarlab.lab.server_thread import ServerThread
from aarlab.lab.status import latest_lab, member_rows
from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.researchers.llm.config import LlmOptions
from aarlab.sandbox.spec import SandboxSpec
from aarlab.store.db import Store
from aarlab.store.identity import Researcher, add_researcher, hash_token, new_token
from aarlab.tasks.paths import kit_dir
from aarlab.text import printable


class LabOptions(BaseModel):
    """Everything ``aarlab run`` can set. Budgets are per lab (time) and per researcher."""

    task: str = "snli-pref"
    # A suite lab's other tasks (not ``task``): every researcher gets their kits read-only and
    # a budget on each; the headline is the method best on the suite mean (lab.suite).
    suite: list[str] = Field(default_factory=list)
    researchers: int = Field(3, ge=1, le=64)
    budget_s: float = Field(1800, gt=0, description="Wall-clock budget of the whole lab.")
    max_experiments: int | None = Field(None, ge=1, description="Per researcher.")
    max_submissions: int | None = Field(None, ge=0, description="Per researcher.")
    directions_file: Path | None = None
    allow_unsandboxed: bool = False
    threads_per_researcher: int = Field(1, ge=1, le=16)
    memory_bytes: int = Field(4 << 30, ge=256 << 20, description="Per researcher process.")
    port: int | None = Field(None, ge=1, le=65535, description="Also serve on 127.0.0.1:PORT.")
    seed: int = 0
    # Member i runs policies[i % len]: "search", "llm:anthropic:MODEL", "llm:openai:MODEL@URL".
    policies: list[str] = Field(default_factory=lambda: ["search"], min_length=1)
    llm: LlmOptions = Field(default_factory=LlmOptions)
    backend: BackendOptions = Field(default_factory=BackendOptions)


@dataclass
class MemberRuntime:
    member_id: int
    researcher_id: int
    name: str
    direction: Direction
    workspace: Path
    token: str
    thread: threading.Thread | None = None
    sandbox: object | None = None
    policy: str = "search"


@dataclass
class Lab:
    settings: Settings
    store: Store
    options: LabOptions
    on_warning: Callable[[str], None] = print
    on_info: Callable[[str], None] = lambda msg: None
    members: list[MemberRuntime] = field(default_factory=list)
    backend: Backend | None = None  # default: made from options.backend when the lab runs

    def __post_init__(self) -> None:
        self.store.create_all()
        self.stop_event = threading.Event()
        self._tick_failed = False  # a progress display that raised is not called again
        self.lab_id: int | None = None
        self.started = 0.0
        self.elapsed_before = 0.0

    # -- setup ---------------------------------------------------------------------------------
    @property
    def lab_dir(self) -> Path:
        return self.settings.home / "labs" / str(self.lab_id)

    def socket_for(self, m: MemberRuntime) -> Path:
        """The researcher API as one member's sandbox is given it: a listener of its own, so
        that a sandbox holding its listener's every connection blocks only itself."""
        return self.lab_dir / f"lab-{m.researcher_id}.sock"

    @property
    def dashboard_socket(self) -> Path:
        """The dashboard and admin API, for a person: no sandbox mounts it."""
        return self.lab_dir / "web.sock"

    def dashboard_addresses(self) -> list[str]:
        out = [f"unix:{self.dashboard_socket}"]
        if self.options.port is not None:
            out.insert(0, f"http://127.0.0.1:{self.options.port}/")
        return out

    def create(self) -> int:
        for i, policy in enumerate(self.options.policies):  # before anything is written
            check_policy(policy, f"policies[{i}]")
        directions = load_directions(self.options.directions_file)
        with self.store.session() as s:
            lab = LabRun(task=self.options.task, status="running",
                         config=self.options.model_dump(mode="json"))
            s.add(lab)
            s.flush()
            self.lab_id = lab.id
            for i in range(self.options.researchers):
                d = direction_for(directions, i, self.options.researchers, self.options.seed)
                researcher, token = add_researcher(s, f"lab{lab.id}-{i}-{d.name}"[:64].lower())
                policy = self.options.policies[i % len(self.options.policies)]
                m = LabMember(lab_id=lab.id, researcher_id=researcher.id, policy=policy,
                              direction=d.name, direction_text=d.text,
                              workspace=str(self.lab_dir / "workspaces" / researcher.name))
                s.add(m)
                s.flush()
                self.members.append(MemberRuntime(m.id, researcher.id, researcher.name, d,
                                                  Path(m.workspace), token, policy=policy))
        return self.lab_id

    def resume(self) -> int:
        """Pick up the latest unfinished lab on this task with fresh tokens for its members."""
        by_name = {d.name: d for d in load_directions(self.options.directions_file)}
        with self.store.session() as s:
            lab = latest_lab(s, task=self.options.task, status="running")
            if lab is None:
                raise AarlabError(f"no unfinished lab on task {self.options.task!r} to resume",
                                  hint="start one with `aarlab run` (without --resume)")
            self.lab_id, self.elapsed_before = lab.id, lab.elapsed_s
            saved = LabOptions.model_validate(lab.config)
            # The budget and team are the lab's own; only how to run it may change on resume.
            self.options = saved.model_copy(update={
                "allow_unsandboxed": self.options.allow_unsandboxed, "port": self.options.port,
                "backend": self.options.backend})
            for m in s.query(LabMember).filter_by(lab_id=lab.id).order_by(LabMember.id):
                r = s.get(Researcher, m.researcher_id)
                token = new_token()  # old tokens died with the old lab; only hashes were kept
                r.token_hash = hash_token(token)
                d = by_name.get(m.direction, Direction(m.direction, m.direction_text, ()))
                self.members.append(MemberRuntime(m.id, r.id, r.name, d, Path(m.workspace),
                                                  token, policy=m.policy))
        return self.lab_id

    # -- running -------------------------------------------------------------------------------
    def remaining(self) -> float:
        return self.options.budget_s - self.elapsed()

    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.started if self.started else 0)

    def run(self, on_tick: Callable[[list[dict], float], None] | None = None) -> int:
        kit = kit_dir(self.settings, self.options.task)
        for task in self.tasks:
            if not (kit_dir(self.settings, task) / "manifest.json").exists():
                raise AarlabError(f"task {task!r} is not built",
                                  hint=f"run `aarlab task build {task}`")
        # A config object may hold the admin token rather than the environment: known either way.
        redact.register(self.settings.admin_token, "AARLAB_ADMIN_TOKEN")
        if self.backend is None:
            self.backend = make_backend(self.options.backend, self.settings,
                                        allow_unsandboxed=self.options.allow_unsandboxed)
        self.backend.connect(len(self.members))
        if self.options.suite and self.backend.name != "local":
            self.on_warning(f"suite {self.options.suite}: only the local backend mounts the "
                            "suite's kits; researchers on Ray nodes see the main task only")
        person = [] if self.options.port is None else [("127.0.0.1", self.options.port)]
        # The lab's per-researcher cap is the server's to enforce: a researcher that ignores
        # AARLAB_MAX_SUBMISSIONS must not get more feedback than the tuned baseline is given.
        # Its tasks alone are scored: a member's token opens no other task of the store.
        cap = self.options.max_submissions
        served = self.settings.model_copy(update={"served_tasks": tuple(self.tasks), **(
            {} if cap is None else
            {"submissions_total": min(self.settings.submissions_total, cap)})})
        try:
            server = ServerThread(served, self.store, [self.socket_for(m) for m in self.members],
                                  tcp=self.backend.tcp_listeners([m.name for m in self.members]),
                                  dashboard_socket=self.dashboard_socket, dashboard_tcp=person)
            server.start()
        except BaseException:
            self.backend.close()
            raise
        self.on_info(f"dashboard: {' or '.join(self.dashboard_addresses())}")
        self.backend.start(self.lab_dir, self.options.task)
        self.started = time.monotonic()
        deadline = time.time() + self.remaining()
        try:
            for m in self.members:
                m.thread = threading.Thread(target=self._run_member, args=(m, kit, deadline),
                                            daemon=True, name=f"researcher-{m.name}")
                m.thread.start()
            while any(m.thread.is_alive() for m in self.members):
                self._save_elapsed()
                self._tick(on_tick, max(0.0, self.remaining()))
                if self.remaining() <= -30:  # a researcher ignoring its deadline: stop it
                    self.stop()
                time.sleep(1.0)
            self._save_elapsed()
            with self.store.session() as s:
                s.get(LabRun, self.lab_id).status = "finished"
            self._tick(on_tick, 0.0)
        finally:
            self.stop()
            self.backend.close()
            server.stop()
            self._retire_tokens()
        return self.lab_id

    def _tick(self, on_tick: Callable[[list[dict], float], None] | None,
              remaining: float) -> None:
        """Show progress; a display that fails (a closed terminal, a bug in a caller's table)
        must not end a lab whose researchers are mid-run: warn once, then run without it."""
        if on_tick is None or self._tick_failed:
            return
        try:
            on_tick(self.status(), remaining)
        except Exception as e:  # noqa: BLE001 - any display error; the lab itself is fine
            self._tick_failed = True
            # Only the type: the message may quote researcher-written text the display was
            # rendering (a markup error), which must not reach the terminal raw.
            self.on_warning(f"progress display failed ({type(e).__name__}); the lab runs on "
                            "without it")

    def _retire_tokens(self) -> None:
        """Kill the members' tokens: a sandbox may have published its own (in a snapshot or a
        finding, which outlive the lab) for a later lab's researcher to submit with on a fresh
        budget. Only hashes are kept, so a random one replaces each; ``resume`` issues new."""
        with self.store.session() as s:
            for m in self.members:
                s.get(Researcher, m.researcher_id).token_hash = hash_token(new_token())

    def stop(self) -> None:
        self.stop_event.set()
        for m in self.members:
            if m.sandbox is not None:
                m.sandbox.terminate()

    def status(self) -> list[dict]:
        with self.store.session() as s:
            return member_rows(s, s.get(LabRun, self.lab_id))

    def _save_elapsed(self) -> None:
        with self.store.session() as s:
            s.get(LabRun, self.lab_id).elapsed_s = self.elapsed()

    def set_member(self, m: MemberRuntime, **fields) -> None:
        """Record a member's state (status, sandboxed, ...) for the dashboard and the report."""
        with self.store.session() as s:
            row = s.get(LabMember, m.member_id)
            for k, v in fields.items():
                setattr(row, k, v)

    @property
    def tasks(self) -> list[str]:
        """Every task of this lab: the main one first, then the suite's."""
        return [self.options.task, *(t for t in self.options.suite if t != self.options.task)]

    def suite_kits(self) -> dict[str, Path]:
        """{task: host kit dir} of the suite's other tasks (empty for a one-task lab)."""
        return {t: kit_dir(self.settings, t) for t in self.tasks[1:]}

    def open_sandbox(self, m: MemberRuntime, spec: SandboxSpec):
        """The member's sandbox from the backend, with where it landed recorded as telemetry.

        SUITE: the one place a suite lab's other kits join a sandbox (spec.suite: mounted
        read-only, checked like the main kit); the sandbox then tells the researcher where they
        are in AARLAB_SUITE (ResearcherEnv.suite). Ray nodes do not get them yet."""
        if self.options.suite and self.backend.name == "local" and not spec.suite:
            spec = SandboxSpec(**{**spec.model_dump(), "suite": self.suite_kits()})
        sandbox = self.backend.sandbox(m.name, spec, m.token)
        with self.store.session() as s:
            s.add(LabEvent(researcher_id=m.researcher_id, kind="placement",
                           payload=self.backend.placement(m.name)))
        return sandbox

    def record_failure(self, m: MemberRuntime, error: str, failures: int) -> None:
        """A researcher attempt failed: keep its error (an ``error`` event: the dashboard shows
        it), say so once, count a restart, back off.

        Why: a lab whose researchers died at start used to sit out its budget with nothing but
        placement events, and the reason stayed in memory. The text is the sandbox's output:
        hostile, so only its printable tail is kept, and no secret: not the admin's or a
        provider's, nor the researcher's own token (the dashboard shows the event)."""
        secrets = {**redact.known(), **({m.token: "researcher token"} if m.token else {})}
        tail = redact.redact(printable_tail(error), secrets)
        with self.store.session() as s:
            row = s.get(LabMember, m.member_id)
            row.status, row.restarts = "restarting", row.restarts + 1
            s.add(LabEvent(researcher_id=m.researcher_id, kind="error",
                           payload={"text": f"attempt {failures} failed: {tail}"}))
        if failures == 1:
            last = tail.splitlines()[-1] if tail else "no output"
            self.on_warning(f"researcher {m.name} failed ({last[:200]}); restarting it with "
                            "back-off; its events hold the error")
        time.sleep(min(30, 2 ** min(failures, 5)))  # back off a researcher that keeps dying

    def _run_member(self, m: MemberRuntime, kit: Path, deadline: float) -> None:
        """The member thread: the runner its policy names (``aarlab.lab.members``)."""
        runner_for(m.policy).run(MemberContext(lab=self, member=m, kit=kit, deadline=deadline))


def printable_tail(text: str, lines: int = 20, chars: int = 2000) -> str:
    """The last ``lines`` lines of ``text`` (at most ``chars``), each without control
    characters (no terminal escapes from a sandbox's output reach the operator's screen)."""
    kept = [printable(line) for line in text.splitlines()]
    return "\n".join([line for line in kept if line.strip()][-lines:])[-chars:]
