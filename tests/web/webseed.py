"""The dashboard tests' lab: a real server thread (uvicorn on 127.0.0.1) over a real SQLite file,
seeded with a tiny lab through the real HTTP API; and a browser tab that records console errors.

The seed is what a short lab leaves behind: two researchers in a lab run with directions and
notebooks, real scored submissions on the tiny tweets task (one of them a probe), a snapshot,
findings with a revision, a comment, a vote and one hidden by the admin, and telemetry events.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from sqlalchemy import select

from aarlab.lab.tables import LabMember, LabRun
from aarlab.researchers.llm.accounting import Ledger
from aarlab.researchers.llm.providers.base import Usage
from aarlab.researchers.llm.transcript import Transcript
from aarlab.researchers.search.notebook import Notebook
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store
from aarlab.store.identity import Researcher
from tarballs import targz_files

ADMIN = "web-admin-token"
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
CHROMIUM = os.environ.get("AARLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TRANSCRIPT_TEXT = "Opening brief: private lab prompt 7f3a"
HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned=2\">"


class LiveServer:
    """uvicorn in a thread on a loopback port the OS picked (no port races between runs)."""

    def __init__(self, app):  # noqa: ANN001
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True, name="web-test-server")

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@dataclass
class Seeded:
    url: str
    store: Store
    http: httpx.Client
    tokens: dict[str, dict[str, str]]
    ids: list[str]
    truth: np.ndarray
    labels: list
    submissions: dict[str, list[dict]] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)
    snapshot_id: str = ""
    probe_id: int = 0

    def predictions(self, correct: float, flip: int = 0) -> dict:
        pred = self.truth.copy()
        wrong = np.arange(len(pred)) >= int(correct * len(pred))
        pred[wrong] = 1 - pred[wrong]
        pred[:flip] = 1 - pred[:flip]
        return {i: self.labels[int(k)] for i, k in zip(self.ids, pred, strict=True)}

    def submit(self, who: str, correct: float, flip: int = 0, **extra) -> dict:
        body = {"predictions": self.predictions(correct, flip),
                "method": extra.pop("method", f"{who} method at {correct}"), **extra}
        r = self.http.post("/v1/tasks/tweets/submissions", json=body, headers=self.tokens[who])
        assert r.status_code == 200, r.text
        self.submissions.setdefault(who, []).append(r.json())
        return r.json()

    def publish(self, who: str, name: str, data: bytes) -> dict:
        """A researcher's notebook, handed to the lab as its client does."""
        r = self.http.put(f"/v1/lab/me/notebooks/{name}", content=data,
                          headers=self.tokens[who])
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, who: str, **finding) -> dict:
        r = self.http.post("/v1/forum/findings", json=finding, headers=self.tokens[who])
        assert r.status_code == 201, r.text
        return r.json()

    def finals(self) -> list[float]:
        with self.store.session() as s:
            return list(s.scalars(select(Submission.pgr_final)))


def seed(lab: Seeded, root: Path) -> None:
    for name in ("ada", "bo", "cy"):
        r = lab.http.post("/v1/admin/researchers", json={"name": name}, headers=ADMIN_H)
        assert r.status_code == 201, r.text
        lab.tokens[name] = {"Authorization": f"Bearer {r.json()['token']}"}

    # The lab run the two researchers belong to, as the orchestrator records it.
    with lab.store.session() as s:
        run = LabRun(task="tweets", status="finished", elapsed_s=40.0,
                     config={"task": "tweets", "researchers": 2, "budget_s": 40,
                             "max_experiments": 4})
        s.add(run)
        s.flush()
        for name, direction in (("ada", "confidence"), ("bo", "consistency"), ("cy", "theory")):
            rid = s.execute(select_researcher(name)).scalar_one()
            ws = root / "workspaces" / name
            ws.mkdir(parents=True)
            s.add(LabMember(lab_id=run.id, researcher_id=rid,
                            policy="llm" if name == "cy" else "search",
                            direction=direction, direction_text=f"explore {direction} methods",
                            workspace=str(ws), sandboxed=True, restarts=int(name == "bo"),
                            status="done"))

    blob = targz_files({"README.md": f"# ada's workspace\n{HOSTILE}\n".encode(),
                   "spec.json": b'{"steps": [{"method": "confidence"}]}\n'})
    r = lab.http.post("/v1/snapshots", content=blob,
                      headers={**lab.tokens["ada"], "Content-Type": "application/gzip"})
    assert r.status_code == 201, r.text
    lab.snapshot_id = r.json()["id"]

    for who, kind, payload in (
            ("ada", "idea", {"spec": "confidence(threshold=0.8)", "why": "baseline: vanilla"}),
            ("ada", "experiment", {"spec": "confidence(threshold=0.8)", "signal": 0.81,
                                   "seconds": 3.2}),
            ("bo", "idea", {"spec": "consistency(k=5)", "why": "direction consistency"}),
            ("bo", "experiment", {"spec": "consistency(k=5)", "signal": 0.79, "seconds": 4.0}),
            ("bo", "error", {"text": "submission failed: budget reached"}),
            ("ada", "note", {"text": "read the forum"})):
        r = lab.http.post("/v1/lab/events", json={"kind": kind, "payload": payload},
                          headers=lab.tokens[who])
        assert r.status_code == 201, r.text

    lab.submit("ada", 0.55)
    lab.submit("bo", 0.6)
    lab.submit("ada", 0.7)
    lab.submit("bo", 0.85)  # the first clear gain over the weak teacher: bo's release
    best = lab.submit("ada", 0.92, snapshot_id=lab.snapshot_id, method="confidence filter 0.8")
    probe = lab.submit("bo", 0.85, flip=1)  # one row away from bo's last: a probe
    with lab.store.session() as s:
        assert s.get(Submission, probe["id"]).is_probe
    lab.probe_id = probe["id"]
    lab.submit("bo", 0.75)  # no better: the released score stays; bo's hour is now spent

    for name, entries in (("ada", 3), ("bo", 2)):
        nb = Notebook(root / "workspaces" / name / "notebook.jsonl")
        for k in range(entries):
            nb.append({"spec": {"steps": [{"method": "confidence"}]}, "why": f"idea {k} of {name}",
                       "score": 0.7 + k / 100, "time": time.time()})
        lab.publish(name, "notebook.jsonl", nb.path.read_bytes())  # the page shows only this

    llm_session(lab, root / "workspaces" / "cy")

    res = lab.post("ada", kind="result", title="Confidence filtering lifts transfer",
                   body=f"Keep confident weak labels only.\n{HOSTILE}", tags=["confidence"],
                   submission_id=best["id"])
    lab.findings["result"] = res["id"]
    lab.findings["bo_result"] = lab.post(
        "bo", kind="result", title="Consistency regularisation result", tags=["consistency"],
        submission_id=lab.submissions["bo"][1]["id"])["id"]
    hyp = lab.post("ada", kind="hypothesis", title="Label smoothing might help calibration",
                   tags=["smoothing"])
    r = lab.http.post(f"/v1/forum/findings/{hyp['id']}/revisions",
                      json={"body": "Second thoughts: try 0.1 first."}, headers=lab.tokens["ada"])
    assert r.status_code == 201, r.text
    lab.findings["hypothesis"] = hyp["id"]
    lab.findings["insight"] = lab.post("bo", kind="insight",
                                       title="Weak labels are noisiest on sarcasm")["id"]
    lab.findings["error"] = lab.post("bo", kind="error",
                                     title="Crash when the batch exceeds the rows")["id"]
    r = lab.http.post(f"/v1/forum/findings/{res['id']}/comments",
                      json={"body": "Reproduced on my side."}, headers=lab.tokens["bo"])
    assert r.status_code == 201, r.text
    r = lab.http.put(f"/v1/forum/findings/{res['id']}/vote", json={"value": 1},
                     headers=lab.tokens["bo"])
    assert r.status_code == 200, r.text
    secret = lab.post("ada", kind="insight", title="Secret zebra plan")
    r = lab.http.post(f"/v1/forum/findings/{secret['id']}/hide",
                      json={"reason": "leaks a test id"}, headers=ADMIN_H)
    assert r.status_code == 200, r.text
    lab.findings["hidden"] = secret["id"]


def llm_session(lab: Seeded, workspace: Path) -> None:
    """One finished LLM session of cy's, through the LLM researcher's own ledger and transcript."""
    with lab.store.session() as s:
        rid = s.execute(select_researcher("cy")).scalar_one()
    ledger = Ledger(lab.store, rid, 1, "anthropic", "claude-test", priced=True)
    log = Transcript(workspace.parent.parent / "transcripts" / "cy-1.jsonl")
    ledger.set_transcript(log.path)
    log.write("session", number=ledger.number, provider="anthropic", model="claude-test",
              system="You are a researcher in aarlab.", tools=["shell"])
    log.write("message", role="user", text=TRANSCRIPT_TEXT, tool_calls=[], results=[])
    log.write("tool_call", id="t1", name="shell", arguments={"cmd": "ls"})
    for turn, usd in ((1, 0.0123), (2, 0.0077)):
        ledger.record(turn, Usage(input=1000, output=200), usd, model="claude-test",
                      request_id=f"r{turn}", stop="end_turn", latency_s=1.0, seconds=30.0 * turn,
                      tool_calls=1)
        log.write("call", turn=turn, usage={"input": 1000, "output": 200}, dollars=usd)
    log.write("end", reason="stop", turns=2, dollars=0.02, seconds=60.0)
    ledger.close("stop", 60.0)
    lab.publish("cy", "notebook.md", b"# cy's notebook\n\nTried nothing yet.\n")


def select_researcher(name: str):
    return select(Researcher.id).where(Researcher.name == name)


class Tab:
    """A page that records every console error and uncaught exception."""

    def __init__(self, page, base: str):  # noqa: ANN001
        self.page, self.base = page, base
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, path: str):  # noqa: ANN201
        resp = self.page.goto(self.base + path, wait_until="load")
        assert resp is not None and resp.status == 200, f"{path}: {resp and resp.status}"
        return resp

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
