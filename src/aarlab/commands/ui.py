"""Shared console helpers: rich progress stages and table/JSON output."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Piped to a file or a CI log, rich assumes 80 columns and folds every table cell into
# fragments (a replication table became "0.317 / [-0.07… / 0.613]"); a log has room to spare.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)

# Control characters (ESC starts a terminal's escape sequences, U+009B is CSI) and bidirectional
# overrides: dropped from any text a researcher wrote before it reaches the owner's terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: object, limit: int | None = None) -> str:
    """Researcher-written ``text`` as rich shows it literally: markup escaped (``[/]`` raised,
    ``[link=…]`` made a hyperlink), controls dropped, anything but a string shown as nothing;
    cut to ``limit`` characters before escaping (a cut escape could be markup again)."""
    if not isinstance(text, str):
        return ""
    return escape(_UNPRINTABLE.sub("", text)[:limit])


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
