"""What a sandbox writes must not reach the lab owner's terminal as markup or escapes.

``aarlab run`` redraws a live table every second from the store, its "current idea" column
being the ``spec`` of each researcher's latest ``idea`` event: free-form telemetry a sandbox
posts. Rendered by rich, ``[/]`` raised MarkupError and a number or a list raised TypeError /
NotRenderableError inside ``Lab.run``'s tick, which stopped the whole lab (every researcher, the
server) and left no report: one event from one sandbox ended everyone's run. ``[link=URL]`` made
a terminal hyperlink, ``[white on white]`` hid text, ESC sequences reached the terminal raw.
The end-of-run summary showed a method label (the suite pick, researcher-typed) the same way.

Over HTTP to the real app on a real SQLite file, then the real tables rendered by rich.
"""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select

from aarlab.commands.run import status_table, summary_table
from aarlab.lab.status import member_rows
from aarlab.lab.tables import LabMember, LabRun
from aarlab.server.app import create_app
from aarlab.store.db import Store

ADMIN = "terminal-redteam-admin"


def _render(table, terminal: bool = True) -> str:
    """As a terminal shows it (escapes and links), or as plain wide text (what it says)."""
    out = io.StringIO()
    Console(file=out, force_terminal=terminal, width=1000, color_system="truecolor"
            if terminal else None).print(table)
    return out.getvalue()


@pytest.mark.parametrize("spec, shown", [
    ("[/]", "[/]"),
    ("[link=https://evil.example]weak_soft[/link]", "[link=https://evil.example]"),
    ("[white on white]hidden[/]", "[white on white]hidden"),
    ("noisy_em [head hidden=256]", "noisy_em [head hidden=256]"),
    ("ok\x1b]52;c;cm0gLXJmIH4=\x07bye", "ok]52;c;cm0gLXJmIH4=bye"),
    ("ok\x1b[2Jbye", "ok[2Jbye"),
    ("ok\u009b2Jbye", "ok2Jbye"),
    (12345, ""),
    (["a", "list"], ""),
    ({"a": 1}, ""),
    (None, ""),
])
def test_a_researchers_idea_cannot_break_or_drive_the_live_table(settings, tmp_path, spec,
                                                                 shown):
    s = settings.model_copy(update={"db_url": f"sqlite:///{tmp_path / 'lab.db'}",
                                    "admin_token": ADMIN})
    store = Store(s.database_url)
    with TestClient(create_app(s, store, role="researcher"), base_url="http://lab") as c, \
            TestClient(create_app(s, store, role="all"), base_url="http://lab") as admin:
        r = admin.post("/v1/admin/researchers", json={"name": "mallory"},
                       headers={"Authorization": f"Bearer {ADMIN}"})
        rid, token = r.json()["id"], r.json()["token"]
        with store.session() as db:
            run = LabRun(task="tweets", status="running", config={})
            db.add(run)
            db.flush()
            db.add(LabMember(lab_id=run.id, researcher_id=rid, policy="search", direction="d",
                             workspace="/nowhere", sandboxed=True))
        r = c.post("/v1/lab/events", json={"kind": "idea", "payload": {"spec": spec}},
                   headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
    with store.session() as db:
        rows = member_rows(db, db.scalar(select(LabRun)))
    table = status_table(1, "tweets", rows, 60.0)  # raised before: the lab stopped
    text = _render(table)
    assert "mallory" in _render(table, terminal=False)
    assert shown in _render(table, terminal=False)
    assert "\x1b]52" not in text and "\x1b[2J" not in text and "\x9b" not in text
    assert "\x1b]8;" not in text  # no terminal hyperlink
    store.engine.dispose()


def test_a_method_label_in_the_run_summary_is_shown_as_text():
    summary = {"lab_id": 1, "task": "tweets", "best_released_pgr": 0.5, "best_final_pgr": 0.4,
               "best_baseline_pgr": 0.3, "tuned_baseline_method": "noisy_em [head hidden=256]",
               "best_baseline_method": "weak_soft [lora lr=0.0001]", "experiments": 1,
               "submissions": 1, "findings": 0, "probe_flags": 0,
               "suite": {"method": "[/][link=https://evil.example]x[/link]", "per_task": {},
                         "final_mean": None, "tuned_mean": None, "diff_mean": None}}
    table = summary_table(summary)  # raised MarkupError at the end of `aarlab run`
    text = _render(table, terminal=False)
    assert "[/][link=https://evil.example]x[/link]" in text and "\x1b]8;" not in _render(table)
    assert "noisy_em [head hidden=256]" in text and "weak_soft [lora lr=0.0001]" in text
