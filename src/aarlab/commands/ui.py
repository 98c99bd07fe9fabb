"""Shared console helpers: rich progress stages and table/JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()


def print_json(obj) -> None:
    # Plain print: rich would wrap long lines and break the JSON for scripts.
    print(json.dumps(obj, default=str))


@contextmanager
def progress_stages(enabled: bool = True) -> Iterator[Callable]:
    """Yields ``stage(description, total)``: a context manager giving ``advance(n)``."""
    progress = Progress(
        SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled, transient=False,
    )

    @contextmanager
    def stage(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
        progress.update(task, total=progress.tasks[task].completed or 1,
                        completed=progress.tasks[task].completed or 1)

    with progress:
        yield stage
