"""``LabClient``: one object per researcher (or admin) talking to the lab over HTTP.

Each service contributes a mixin; compose them here and keep this file small.
"""

from aarlab.client.base import (
    AuthError,
    BaseClient,
    BudgetExceeded,
    InvalidRequest,
    LabError,
    NotFound,
    ServerError,
)
from aarlab.client.forum import ForumAPI
from aarlab.client.kits import KitAPI
from aarlab.client.lab import LabAPI
from aarlab.client.scoring import AdminAPI, ScoringAPI


class LabClient(ScoringAPI, ForumAPI, KitAPI, LabAPI, AdminAPI, BaseClient):
    """``LabClient(base_url=... | socket=..., token=...)``; see ``BaseClient``."""


__all__ = ["AuthError", "BudgetExceeded", "InvalidRequest", "LabClient", "LabError", "NotFound",
           "ServerError"]
