"""Known secret values, cut out of text before a model or a transcript sees it.

The lab process holds secrets a researcher must never read: the admin token and the providers'
API keys. They never enter a sandbox's environment (``aarlab.sandbox.spec``), but text reaches
the model from many places (tool outputs, error messages, the notebook in the prompt), and a
bug or a leak in any of them must still not hand a key to the model or write it to a
transcript an auditor reads. So every such text passes through ``redact``, which replaces each
known secret value by a marker naming only where it came from.

Known secrets: values of this process's environment variables whose names say they are
credentials (``*_API_KEY``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``), and values registered
with ``register`` (the lab registers its admin token, which may come from a config object
rather than the environment).
"""

from __future__ import annotations

import os
import re
import threading

SECRET_NAME = re.compile(r"API_?KEY|TOKEN|SECRET|PASSW(?:OR)?D|CREDENTIAL", re.I)
MIN_LEN = 8  # shorter values would redact ordinary words and numbers

_lock = threading.Lock()
_registered: dict[str, str] = {}


def register(value: str | None, name: str) -> None:
    """Treat ``value`` as a secret from now on in this process (``name`` says what it is)."""
    if value and len(value) >= MIN_LEN:
        with _lock:
            _registered[value] = name


def known() -> dict[str, str]:
    """``{secret value: name}``: the environment's credentials and the registered values."""
    out = {v: k for k, v in os.environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_LEN}
    with _lock:
        out.update(_registered)
    return out


def redact(text: str, secrets: dict[str, str] | None = None) -> str:
    """``text`` with every known secret value replaced by ``[redacted: NAME]``."""
    if not text:
        return text
    for value, name in sorted((secrets if secrets is not None else known()).items(),
                              key=lambda kv: -len(kv[0])):  # longest first: one may hold another
        if value in text:
            text = text.replace(value, f"[redacted: {name}]")
    return text
