"""User-facing errors: one line saying what is wrong, and how to fix it.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


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
