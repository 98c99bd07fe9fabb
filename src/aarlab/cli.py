"""The ``aarlab`` command line: one typer app; each command group lives in ``aarlab.commands``.

User mistakes (``AarlabError``) print one line naming what is wrong and how to fix it, with exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from aarlab.commands import baseline, replicate, run, serve, task
from aarlab.commands.ui import plain
from aarlab.errors import AarlabError
from aarlab.file_modes import lock_down

app = typer.Typer(
    name="aarlab",
    help="An automated alignment research lab for weak-to-strong supervision.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each command module defines ``register(app)`` and imports its heavy layers (torch, sklearn,
# the lab) inside its commands, so that ``aarlab --help`` starts at once. Listed in help order.
for _module in (task, baseline, serve, run, replicate):
    _module.register(app)


def main() -> None:
    err = Console(stderr=True)
    try:
        lock_down()  # umask 077; answer keys, store and AARLAB_HOME private (file_modes)
        app()
    except AarlabError as e:
        # As typed: one line whatever the terminal's width (soft_wrap), and a name such as
        # llm:gemini:pro or [x] is not turned into an emoji or markup.
        # Markup escaped and control characters dropped: a message may quote a sandbox's text.
        err.print("[bold red]error:[/] " + plain(e.message + (f" — {e.hint}" if e.hint else "")),
                  highlight=False, soft_wrap=True, emoji=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
