"""User-facing errors: one line saying what is wrong, and how to fix it.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""

import math


class AarlabError(Exception):
    """A mistake or missing piece the user can fix. ``hint`` says how.

    Over HTTP, the app's one handler (``aarlab.server.app``) answers it with ``status`` and
    ``{"detail": str(error)}``; subclasses set their own status.
    """

    status: int = 400
    headers: dict | None = None

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def retry_after_s(seconds: float | None) -> int:
    """The ``Retry-After`` of every 429: whole seconds, rounded up, at least 1 (a client told
    0, or a fraction rounded down, retries at once and is refused again)."""
    if seconds is None or not math.isfinite(seconds):
        return 1
    return max(1, math.ceil(round(seconds, 3)))  # to the ms first: float noise adds no second


class TooManyRequests(AarlabError):
    """Refused for now (429): ``Retry-After`` says in how many seconds, and so does the hint.
    The app's one handler answers it like any ``AarlabError``: ``{"detail": ...}``."""

    status = 429

    def __init__(self, message: str, retry_after: float | None,
                 headers: dict[str, str] | None = None):
        self.retry_after = retry_after_s(retry_after)
        super().__init__(message, hint=f"retry after {self.retry_after} s")
        self.headers = {**(headers or {}), "Retry-After": str(self.retry_after)}


class UnknownTaskError(AarlabError):
    pass


class TaskNotBuiltError(AarlabError):
    pass


class CorruptCacheError(AarlabError):
    pass


class SourceUnavailableError(AarlabError):
    pass


class SpecError(AarlabError):
    """A bad method spec or parameter; the message names the field."""
