"""Group commit: many submissions, one transaction, one fsync.

SQLite in WAL mode with synchronous=FULL pays one fsync per commit (milliseconds to tens of
milliseconds on ordinary disks), which would cap a one-commit-per-request server at a few dozen
submissions per second. Requests instead hand their scored submission to one writer thread,
which takes everything waiting, records it in a single transaction and only then wakes each
request. A request is acknowledged only after its transaction committed, so durability is the
same as one commit per request; only the fsyncs are shared.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH = 256


@dataclass
class Job:
    payload: Any
    result: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class GroupCommitter:
    """``run(payload)`` blocks until ``process(batch)`` has set the job's result or error.

    ``process`` receives a list of jobs and must set ``result`` or ``error`` on each; if it
    raises, every job of the batch gets that exception.
    """

    def __init__(self, process: Callable[[list[Job]], None], name: str = "group-commit"):
        self._process = process
        self._queue: queue.Queue[Job] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def run(self, payload: Any) -> Any:
        job = Job(payload)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._process(batch)
            except BaseException as e:  # noqa: BLE001 - handed to every waiting request
                for job in batch:
                    job.result, job.error = None, e
            for job in batch:
                job.done.set()
