"""Researchers' notebooks, published to the lab and kept in the store: the one way a notebook
reaches a page.

A notebook is written by its researcher, so it is hostile input. ``publish`` takes bytes (from
the HTTP route, or from the LLM member runner, which reads them through the sandbox contract)
and keeps them only as checked text: at most ``NOTEBOOK_MAX_BYTES``, UTF-8, no control
character but tab and newline (C1 and bidirectional overrides too, escaped in JSON or not), and
for ``notebook.jsonl`` one JSON object per line with finite numbers, stored as we re-serialise
it. A refusal names what is wrong and never echoes the bytes. Latest wins, one row per
researcher and notebook.

How often is not decided here: a publish over HTTP is a write like a forum post, counted by
the researcher's one write limiter (``writes_per_minute``, ``aarlab.server.limits.WriteRate``),
so a loop cannot make the store churn; the LLM member's lab-side publisher keeps the lab's own
timer.
"""

from __future__ import annotations

import hashlib
import json
import math
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aarlab.client.lab import NOTEBOOK_MAX_BYTES, NOTEBOOKS
from aarlab.clock import utcnow
from aarlab.errors import AarlabError
from aarlab.lab.tables import LabNotebook
from aarlab.store.db import Store

# C0 and C1 controls (\r is dropped first; \t and \n stay: U+009B is a terminal's CSI) and the
# bidirectional embeddings, overrides and isolates, which make a page show text reordered.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_STRING_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class NotebookError(AarlabError):
    status = 422


class NotebookTooLarge(NotebookError):
    status = 413


class UnknownNotebook(NotebookError):
    status = 404


def check_name(name: str) -> None:
    if name not in NOTEBOOKS:
        raise UnknownNotebook(f"name: expected one of {', '.join(NOTEBOOKS)}")


def check(name: str, data: bytes) -> str:
    """The text to keep for notebook ``name``, or a ``NotebookError`` naming what is wrong."""
    check_name(name)
    if len(data) > NOTEBOOK_MAX_BYTES:
        raise NotebookTooLarge(f"{name}: at most {NOTEBOOK_MAX_BYTES} bytes (got {len(data)}); "
                               "publish its newest part")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotebookError(f"{name}: expected UTF-8 text (byte {e.start} is not)") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    bad = _CONTROL.search(text)
    if bad:
        raise NotebookError(f"{name}: expected text, found control character "
                            f"U+{ord(bad.group()):04X} at character {bad.start()}")
    return _json_lines(name, text) if name.endswith(".jsonl") else text


def _json_lines(name: str, text: str) -> str:
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
        except _NotFinite:
            raise NotebookError(f"{name} line {n}: expected finite numbers (1e400 is "
                                "infinite, which JSON cannot hold)") from None
        except (ValueError, RecursionError):
            raise NotebookError(f"{name} line {n}: expected one JSON object per line") from None
        if not isinstance(entry, dict):
            raise NotebookError(f"{name} line {n}: expected a JSON object, got "
                                f"{type(entry).__name__}")
        bad = _escaped_control(entry)  # "\u202e" passes the text check as six ASCII bytes
        if bad:
            raise NotebookError(f"{name} line {n}: expected text, found control character "
                                f"U+{ord(bad):04X} in a string")
        out.append(json.dumps(entry, sort_keys=True) + "\n")  # ours, not the researcher's bytes
    return "".join(out)


def _no_constant(word: str):  # noqa: ANN202
    raise ValueError(f"{word} is not JSON")


class _NotFinite(ValueError):
    pass


def _finite(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise _NotFinite(text)
    return x


def _escaped_control(entry: dict) -> str | None:
    """The first control character in the entry's keys and strings (a stack: no recursion)."""
    stack: list = [entry]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, str):
            bad = _STRING_CONTROL.search(x)  # a JSON "\\r" (a CRLF in a message) is fine
            if bad:
                return bad.group()
    return None


def publish(store: Store, researcher_id: int, name: str, data: bytes) -> dict:
    """Check and keep ``data`` as researcher ``researcher_id``'s notebook ``name``."""
    text = check(name, data)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        with store.session() as s:
            return _keep(s, researcher_id, name, text, digest)
    except IntegrityError:  # two first publishes raced: the other one is there now
        with store.session() as s:
            return _keep(s, researcher_id, name, text, digest)


def _keep(s: Session, researcher_id: int, name: str, text: str, digest: str) -> dict:
    row = s.scalar(select(LabNotebook).where(LabNotebook.researcher_id == researcher_id,
                                             LabNotebook.name == name))
    out = {"name": name, "bytes": len(text.encode("utf-8")), "changed": True}
    if row is None:
        s.add(LabNotebook(researcher_id=researcher_id, name=name, text=text, sha256=digest))
        return out
    if row.sha256 == digest:
        return out | {"changed": False}
    row.text, row.sha256, row.updated_at = text, digest, utcnow()
    row.revisions += 1
    return out


def latest(s: Session, researcher_id: int) -> dict[str, LabNotebook]:
    """``{name: row}`` of the researcher's published notebooks."""
    return {r.name: r for r in s.scalars(select(LabNotebook).where(
        LabNotebook.researcher_id == researcher_id))}


def entries(text: str, n: int) -> list[dict]:
    """The last ``n`` entries of a stored ``notebook.jsonl``, newest first (the store holds
    only lines ``check`` re-serialised, so each parses)."""
    lines = [line for line in text.split("\n") if line]
    return [json.loads(line) for line in reversed(lines[-n:])]
