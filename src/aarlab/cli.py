"""The ``aarlab`` command line: one typer app; each command group lives in ``aarlab.commands``.

User mistakes (``AarlabError``) print one line naming what is wrong and how to fix it, with exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from aarlab.errors import AarlabError
from aarlab.file_modes import lock_down

app = typer.Typer(
    name="aarlab",
    help="An automated alignment research lab for weak-to-strong supervision.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines ``register(app)``. Listed here, in help order.
COMMAND_MODULES = [
    "aarlab.commands.task",
    "aarlab.commands.baseline",
    "aarlab.commands.serve",
    "aarlab.commands.run",
    "aarlab.commands.replicate",
]


def _mount() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that command group is not part of this build yet
                continue
            raise
        module.register(app)


_mount()


def main() -> None:
    err = Console(stderr=True)
    try:
        lock_down()  # umask 077; answer keys, store and AARLAB_HOME private (file_modes)
        app()
    except AarlabError as e:
        err.print(f"[bold red]error:[/] {e.message}" + (f" — {e.hint}" if e.hint else ""),
                  highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
