"""Text a sandbox wrote, made safe to put in a report, a table cell or the owner's terminal."""

from __future__ import annotations


def printable(text: object, limit: int | None = None) -> str:
    """The printable characters of ``str(text)``, cut to ``limit``: no C0/C1 control (a
    terminal escape), no line break, no bidi override or other format character."""
    return "".join(c for c in str(text) if c.isprintable())[:limit]
