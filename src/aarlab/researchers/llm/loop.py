"""The agent loop: fresh sessions of model calls and tool calls until a budget or the deadline.

One session: render the prompt (notebook and forum as memory), then call the model; run every
tool call it makes (structured, or written as JSON in its text: ``textcalls``); send the results
back; repeat. A reply without a tool call before any work gets a short reminder (at most
``MAX_REMINDERS``). A session ends when the model replies without a tool call after that, at the
turn limit, or at a budget; a model call still in flight at the deadline is abandoned and its
connection closed, so the lab ends on time; the next session starts from nothing but the
notebook and the forum, as in the study. Budgets (dollars, tokens) count every session of the
researcher, read back from the store; a call that reaches one ends the researcher at once, so
the overshoot is at most one call. Each session's notebook ends with a line the lab writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aarlab.client import LabClient, LabError
from aarlab.redact import redact
from aarlab.researchers.llm.accounting import Ledger, Totals, totals
from aarlab.researchers.llm.config import LlmOptions
from aarlab.researchers.llm.pricing import PriceTable
from aarlab.researchers.llm.prompt import Prompt
from aarlab.researchers.llm.providers.base import Message, Provider, ProviderError, Reply, Usage
from aarlab.researchers.llm.textcalls import parse_text_calls, signature
from aarlab.researchers.llm.tools import NOTEBOOK, Toolbox, brief, clip
from aarlab.researchers.llm.transcript import Transcript
from aarlab.sandbox.errors import SandboxError

# How a session or the researcher ended. The first four end the researcher.
FINAL = ("budget", "deadline", "stopped", "fatal")
MAX_FAILED_SESSIONS = 5
# A session that ends without a single tool call did nothing; one model that does that at once
# ran 830 sessions in 4 minutes (issue 15). Wait 2, 4, 8 ... seconds, at most 5 minutes.
EMPTY_BACKOFF_S, EMPTY_BACKOFF_CAP_S = 2.0, 300.0
# Replies without a tool call before the session did anything that get a reminder, not an end.
MAX_REMINDERS = 2
# An in-flight model call is abandoned this long before the deadline (the lab's own margin).
CANCEL_MARGIN_S = 2.0


class Cancelled(Exception):
    """The model call was abandoned: the lab's deadline came or the lab was stopped."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class LlmResearcher:
    provider: Provider
    toolbox: Toolbox
    client: LabClient
    store: object  # aarlab.store.db.Store
    researcher_id: int
    lab_id: int | None
    options: LlmOptions
    prices: PriceTable
    prompt: Prompt
    transcripts: Path  # this researcher's transcript directory (outside every sandbox)
    deadline: float  # unix time
    context: dict  # prompt variables fixed for the researcher: task, direction, paths
    stop_event: threading.Event = field(default_factory=threading.Event)
    on_event: Callable[[str, dict], None] = lambda kind, payload: None
    last_error: str = ""
    last_tool_calls: int = 0  # tool calls the model made in the last session

    def run(self) -> str:
        """Sessions until a final reason; returns it (budget, deadline, stopped, fatal,
        sessions, failing)."""
        failures = sessions = empty = 0
        while True:
            why = self._stop_reason(self._spent())
            if why:
                return why
            if self.options.max_sessions and sessions >= self.options.max_sessions:
                return "sessions"
            reason = self.session()
            sessions += 1
            if reason in FINAL:
                return reason
            if reason == "error":
                failures += 1
                if failures >= MAX_FAILED_SESSIONS:
                    return "failing"
                # Back off a provider that keeps failing after its own retries.
                self.stop_event.wait(min(60, 2 ** failures))
                continue
            failures = 0
            if self.last_tool_calls:
                empty = 0
                continue
            empty += 1
            wait = min(EMPTY_BACKOFF_CAP_S, EMPTY_BACKOFF_S * 2 ** (empty - 1),
                       max(0.0, self.deadline - time.time()))
            self.on_event("note", {"text": f"session {sessions} ended ({reason}) without a "
                                           f"tool call; the next starts in {wait:.0f} s"})
            self.stop_event.wait(wait)

    # -- one session -----------------------------------------------------------------------------
    def session(self) -> str:
        spent = self._spent()
        price = self.prices.lookup(self.provider.model)
        ledger = Ledger(self.store, self.researcher_id, self.lab_id, self.provider.name,
                        self.provider.model, priced=price is not None)
        path = self.transcripts / f"session-{ledger.number:03d}.jsonl"
        ledger.set_transcript(path)
        log = Transcript(path)
        # The notebook and forum in the prompt are researcher-written: no known secret in them.
        system, opening = map(redact, self.prompt.render(self._variables(ledger.number, spent)))
        log.write("session", number=ledger.number, provider=self.provider.name,
                  model=self.provider.model, researcher_id=self.researcher_id, system=system,
                  tools=[t.name for t in self.toolbox.specs])
        messages = [Message("user", opening)]
        log.write("message", **messages[0].to_json())
        t0 = time.monotonic()
        session_usage, session_dollars, turn, reason, error = Usage(), 0.0, 0, "turns", ""
        self.last_tool_calls = reminders = 0
        try:
            while turn < self.options.max_turns:
                why = self._stop_reason(spent)
                if why:
                    reason = why
                    break
                turn += 1
                started = time.monotonic()
                try:
                    reply = self._complete(system, messages)
                except Cancelled as e:
                    reason = e.reason
                    log.write("cancelled", turn=turn, reason=e.reason,
                              waited_s=round(time.monotonic() - started, 3),
                              note="model call abandoned in flight; its tokens are not counted")
                    break
                except ProviderError as e:
                    reason, error = ("fatal" if e.fatal else "error"), e.message
                    log.write("error", message=e.message, fatal=e.fatal, error_kind=e.kind)
                    break
                if not reply.tool_calls:
                    parsed = parse_text_calls(reply.text, self.toolbox.specs)
                    if parsed:
                        reply = dataclasses.replace(reply, tool_calls=parsed, stop="tool_use")
                dollars = price.dollars(reply.usage) if price else 0.0
                session_usage, session_dollars = session_usage + reply.usage, \
                    session_dollars + dollars
                spent = _add(spent, reply.usage, dollars)
                ledger.record(turn, reply.usage, dollars, model=reply.model,
                              request_id=reply.request_id, stop=reply.raw_stop,
                              latency_s=time.monotonic() - started,
                              seconds=time.monotonic() - t0, tool_calls=len(reply.tool_calls))
                self.last_tool_calls += len(reply.tool_calls)
                msg = Message("assistant", reply.text, list(reply.tool_calls))
                messages.append(msg)
                log.write("message", **msg.to_json())
                log.write("call", turn=turn, usage=reply.usage.__dict__, dollars=dollars,
                          stop=reply.raw_stop, model=reply.model, request_id=reply.request_id,
                          latency_s=round(time.monotonic() - started, 3),
                          **({"server_timings": reply.timings} if reply.timings else {}))
                if reply.text.strip():
                    self.on_event("idea", {"spec": reply.text.strip().splitlines()[0][:200]})
                if self._over_budget(spent):
                    reason = "budget"
                    break
                if not reply.tool_calls:
                    if reply.stop == "max_tokens":  # cut mid-thought: let it go on
                        messages.append(Message("user", "(Your reply hit the output limit. "
                                                "Continue, in shorter steps.)"))
                        log.write("message", **messages[-1].to_json())
                        continue
                    if self.last_tool_calls == 0 and reminders < MAX_REMINDERS:
                        reminders += 1
                        messages.append(Message("user", self._reminder()))
                        log.write("message", reminder=reminders, **messages[-1].to_json())
                        continue
                    reason = "stop"
                    break
                results = []
                for call in reply.tool_calls:
                    if self.stop_event.is_set():
                        break
                    log.write("tool_call", id=call.id, name=call.name, arguments=call.arguments,
                              **({"parsed_from_text": True} if call.from_text else {}))
                    results.append(self.toolbox.run(call))
                if self.stop_event.is_set():
                    reason = "stopped"
                    break
                tool_msg = Message("tool", results=results)
                messages.append(tool_msg)
                log.write("message", **tool_msg.to_json())
        finally:
            seconds = time.monotonic() - t0
            ledger.close(reason, seconds, error)
            self.last_error = error
            log.write("end", reason=reason, error=error, turns=turn,
                      usage=session_usage.__dict__, dollars=session_dollars, seconds=seconds)
            self._close_notebook(ledger.number, reason, turn, session_usage, session_dollars,
                                 path)
        return reason

    def _complete(self, system: str, messages: list[Message]) -> Reply:
        """One model call, abandoned (connection closed) at the deadline or a stop: a slow
        local model must not hold the lab past its budget (issue 19: 583 s over 6 minutes)."""
        box: dict = {}
        done = threading.Event()
        timeout = min(self.options.request_timeout_s, max(30.0, self.deadline - time.time() + 30))

        def work() -> None:
            try:
                box["reply"] = self.provider.complete(
                    system, messages, self.toolbox.specs,
                    max_tokens=self.options.max_output_tokens, timeout_s=timeout)
            except BaseException as e:  # noqa: BLE001 - handed to the loop's thread
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=work, name="llm-call", daemon=True).start()
        while not done.wait(0.2):
            if self.stop_event.is_set() or time.time() >= self.deadline - CANCEL_MARGIN_S:
                with contextlib.suppress(Exception):
                    self.provider.cancel()
                raise Cancelled("stopped" if self.stop_event.is_set() else "deadline")
        if "error" in box:
            raise box["error"]
        return box["reply"]

    def _reminder(self) -> str:
        tools = "\n".join(f"- {signature(s)}" for s in self.toolbox.specs)
        return ("(Lab: your reply called no tool, so nothing was run. Work happens only through "
                "tool calls. Call one now, either with the tool-calling interface or as JSON in "
                "a code block:\n```json\n{\"name\": \"shell\", \"arguments\": {\"command\": "
                "\"ls\"}}\n```\nThe tools (? = optional):\n" + tools + ")")

    # -- budgets ---------------------------------------------------------------------------------
    def _spent(self) -> Totals:
        with self.store.session() as s:
            return totals(s, [self.researcher_id]).get(self.researcher_id, Totals())

    def _over_budget(self, spent: Totals) -> bool:
        o = self.options
        return bool((o.budget_usd is not None and spent.dollars >= o.budget_usd)
                    or (o.budget_tokens is not None and spent.tokens >= o.budget_tokens))

    def _stop_reason(self, spent: Totals) -> str | None:
        if self.stop_event.is_set():
            return "stopped"
        if time.time() >= self.deadline - 5:
            return "deadline"
        if self._over_budget(spent):
            return "budget"
        return None

    # -- memory ----------------------------------------------------------------------------------
    def _variables(self, number: int, spent: Totals) -> dict:
        o = self.options
        notebook = ""
        with contextlib.suppress(FileNotFoundError, SandboxError, UnicodeDecodeError):
            notebook = self.toolbox.sandbox.read_file(NOTEBOOK)
        if len(notebook) > o.notebook_chars:  # keep the newest part: it says what to do next
            notebook = "[… older notes cut; read all with notebook_read …]\n" + \
                notebook[-o.notebook_chars:]
        return self.context | {
            "tools": self.toolbox.specs,
            "limits": {"shell_timeout_s": o.shell_timeout_s, "max_turns": o.max_turns},
            "budget": {"usd": o.budget_usd, "tokens": o.budget_tokens},
            "spent": {"dollars": spent.dollars, "tokens": spent.tokens},
            "session": {"number": number,
                        "minutes_left": max(0.0, (self.deadline - time.time()) / 60)},
            "notebook": notebook, "forum": self._forum(),
        }

    def _forum(self) -> dict:
        task = self.context["task"]["name"]
        out: dict = {"results": [], "recent": []}
        with contextlib.suppress(LabError):
            found = self.client.findings(kind="result", task=task, sort="pgr", limit=5)
            out["results"] = [brief(f) | {"author": brief(f).get("author", "?")}
                              for f in found.get("items", [])]
            found = self.client.findings(task=task, sort="new", limit=5)
            out["recent"] = [brief(f) | {"author": brief(f).get("author", "?")}
                             for f in found.get("items", [])]
        return out

    def _close_notebook(self, number: int, reason: str, turns: int, usage: Usage,
                        dollars: float, transcript: Path) -> None:
        """Append the lab's line for this session and keep a copy beside the transcript."""
        line = (f"\n<!-- lab: session {number} ended ({reason}) after {turns} model calls, "
                f"{usage.total} tokens, ${dollars:.4f} -->\n")
        try:
            try:
                text = self.toolbox.sandbox.read_file(NOTEBOOK)
            except FileNotFoundError:
                text = ""
            self.toolbox.sandbox.write_file(NOTEBOOK, text + line)
            transcript.with_suffix(".notebook.md").write_text(clip(text + line, 5_000_000),
                                                              encoding="utf-8")
        except (OSError, SandboxError, UnicodeDecodeError) as e:
            self.on_event("error", {"text": f"could not save the notebook: {e}"})


def _add(t: Totals, u: Usage, dollars: float) -> Totals:
    return Totals(t.sessions, t.calls + 1, t.input_tokens + u.input, t.output_tokens + u.output,
                  t.cache_read_tokens + u.cache_read, t.cache_write_tokens + u.cache_write,
                  t.dollars + dollars, t.seconds)

