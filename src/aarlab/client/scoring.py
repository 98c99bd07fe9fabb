"""Client calls for the scoring server: tasks, submissions, leaderboard, budgets; and admin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ScoringAPI:
    """Mixin over ``BaseClient`` (needs ``get``/``post``)."""

    def tasks(self) -> list[dict]:
        return self.get("/v1/tasks")

    def submit(self, task: str, predictions: Mapping[str, Any], method: str | None = None,
               snapshot_id: str | None = None, seeds: list[int] | None = None) -> dict:
        """Score ``{test row id: label}``; returns the receipt with the *released* PGR.

        ``seeds``: the weak-teacher seeds behind the predictions, so replication can use others.
        """
        body = {"predictions": dict(predictions), "method": method, "snapshot_id": snapshot_id}
        if seeds is not None:
            body["seeds"] = [int(s) for s in seeds]
        return self.post(f"/v1/tasks/{task}/submissions", json=body)

    def my_submissions(self, task: str) -> list[dict]:
        return self.get(f"/v1/tasks/{task}/submissions")

    def submission(self, submission_id: int) -> dict:
        return self.get(f"/v1/submissions/{submission_id}")

    def leaderboard(self, task: str) -> dict:
        return self.get(f"/v1/tasks/{task}/leaderboard")

    def me(self) -> dict:
        return self.get("/v1/me")


class AdminAPI:
    """Calls that need the lab's admin token."""

    def add_researcher(self, name: str) -> dict:
        """Returns ``{"id", "name", "token"}``; the token is shown only this once."""
        return self.post("/v1/admin/researchers", json={"name": name})

    def researchers(self) -> list[dict]:
        return self.get("/v1/admin/researchers")

    def revoke(self, ref: str | int) -> dict:
        return self.post(f"/v1/admin/researchers/{ref}/revoke")

    def admin_leaderboard(self, task: str) -> dict:
        return self.get(f"/v1/admin/tasks/{task}/leaderboard")

    def audit(self, kind: str | None = None, limit: int = 500) -> list[dict]:
        params = {"limit": limit, **({"kind": kind} if kind else {})}
        return self.get("/v1/admin/audit", params=params)

    def admin_submission(self, submission_id: int) -> dict:
        return self.get(f"/v1/admin/submissions/{submission_id}")
