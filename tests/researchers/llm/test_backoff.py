"""Backoff on LLM sessions that end at once (issue 15: 830 sessions in 4 minutes).

The loop's policy alone: sessions are stubbed (each ends with or without a tool call) and the
waits are recorded instead of slept, so this runs in milliseconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from aarlab.researchers.llm.accounting import Totals
from aarlab.researchers.llm.config import LlmOptions
from aarlab.researchers.llm.loop import EMPTY_BACKOFF_CAP_S, LlmResearcher


class Waits(threading.Event):
    def __init__(self):
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        return False


def researcher(tool_calls: list[int], deadline_s: float = 3600) -> LlmResearcher:
    r = LlmResearcher(provider=None, toolbox=None, client=None, store=None, researcher_id=1,
                      lab_id=None, options=LlmOptions(max_sessions=len(tool_calls)), prices=None,
                      prompt=None, transcripts=Path("unused"),
                      deadline=time.time() + deadline_s, context={}, stop_event=Waits())
    calls = iter(tool_calls)
    r._spent = Totals

    def session() -> str:
        r.last_tool_calls = next(calls)
        return "stop"

    r.session = session
    return r


def test_empty_sessions_back_off_exponentially_up_to_a_cap():
    r = researcher([0] * 12)
    assert r.run() == "sessions"
    waits = r.stop_event.waits
    assert waits[:5] == [2, 4, 8, 16, 32]
    assert max(waits) == EMPTY_BACKOFF_CAP_S and len(waits) == 12
    # 830 empty sessions would now take hours, not 4 minutes
    assert sum(min(EMPTY_BACKOFF_CAP_S, 2.0 * 2 ** k) for k in range(830)) > 60 * 60


def test_a_session_that_works_resets_the_backoff_and_the_deadline_caps_it():
    r = researcher([0, 0, 3, 0, 1, 1])
    r.run()
    assert r.stop_event.waits == [2, 4, 2]  # sessions with tool calls do not wait
    r = researcher([0] * 8, deadline_s=20)  # never waits past the deadline
    r.run()
    assert 16 < max(r.stop_event.waits) <= 20
