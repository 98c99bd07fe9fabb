"""Red-team pass (session 14, third round): input nested past a parser's depth, and a workspace
nested past the quota's walk.

- One snapshot holding JSON (or Python) nested 5,000 deep raised RecursionError out of the
  audit's static scan, and a released result whose ``spec.json`` was such JSON raised out of
  the final report's ``top_methods``: no final report, no audit, no replication for the lab.
- A forum post with such a JSON block raised out of every search researcher that read it, on
  every restart.
- A directory chain deeper than the quota's walk (256) made the workspace unmeasurable, and an
  unmeasurable workspace had no quota at all: 402 MiB written against 64 MiB, for good.

Through the real ASGI app on a real SQLite file, and real bubblewrap sandboxes.
"""

from __future__ import annotations

import numpy as np
import pytest

from aarlab.errors import SpecError
from aarlab.replication.audit import audit_lab
from aarlab.replication.report import leaderboard, top_methods
from aarlab.researchers.llm.tools import parse_predictions
from aarlab.researchers.search.agent import _valid
from aarlab.sandbox import SandboxSpec, make_sandbox, sandbox_available
from aarlab.sandbox.spec import Limits
from aarlab.w2s.spec import parse_spec
from redteam_lab import lab_of, register
from tarballs import targz_files

DEEP_JSON = b"[" * 5000 + b"]" * 5000
DEEP_PY = b"x = test" + b"[0]" * 3000 + b"\n"


def test_deep_snapshots_cost_a_line_not_the_labs_audit_and_report(lab, tiny_tweets):
    s, store, c = lab
    kit, key = tiny_tweets
    ids = kit.ids("test")
    truth = key.labels("test", ids)
    h = {name: register(c, name) for name in ("alice", "mallory")}

    def submit(who, pred, snap=None):
        r = c.post("/v1/tasks/tweets/submissions", headers=h[who], json={
            "predictions": {i: kit.label_names[int(k)] for i, k in zip(ids, pred, strict=True)},
            "method": who, **({"snapshot_id": snap} if snap else {})})
        assert r.status_code == 200, r.text
        return r.json()

    def upload(who, files):
        r = c.post("/v1/snapshots", headers=h[who], content=targz_files(files))
        assert r.status_code == 201, r.text
        return r.json()["id"]

    honest = upload("alice", {"spec.json": b'{"method": "weak_soft"}'})
    submit("alice", kit.weak_probs("test", 0).argmax(1), honest)
    scan_bomb = upload("mallory", {"run.py": b"print(1)\n", "notes.json": DEEP_JSON,
                                   "deep.py": DEEP_PY})
    submit("mallory", np.random.default_rng(0).integers(0, 2, len(ids)), scan_bomb)
    spec_bomb = upload("mallory", {"spec.json": DEEP_JSON})
    assert submit("mallory", truth, spec_bomb)["new_best"]  # a top result of the board

    lab_id = lab_of(store, ["alice", "mallory"])

    audit = audit_lab(store, s, lab_id, [])
    assert audit is not None
    board = leaderboard(store, lab_id)
    methods, not_replicable = top_methods(store, s, board, 3, (101,), [])
    assert honest in [m.snapshot_id for m, _ in methods]
    assert any("nested too deeply" in r["not_replicable"] for r in not_replicable)


def test_deep_json_is_a_bad_spec_or_table_wherever_a_researcher_reads_it():
    text = DEEP_JSON.decode()
    with pytest.raises(SpecError, match="nested too deeply"):
        parse_spec(text)
    assert _valid(text) is None  # a forum post's spec block, or a snapshot's spec.json
    assert _valid('{"steps": [{"method": "weak_soft"}]}') is not None  # a plain one reads
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_predictions('{"a":' * 3000 + "1" + "}" * 3000, "p.json")


BWRAP, WHY = sandbox_available()


@pytest.mark.skipif(not BWRAP, reason=f"bubblewrap cannot run here: {WHY}")
def test_a_workspace_too_deep_to_measure_still_has_a_quota_and_can_be_repaired(settings,
                                                                                  tmp_path):
    box = make_sandbox(SandboxSpec(name="deep-quota", workspace=tmp_path / "ws",
                                   limits=Limits(timeout_s=60, workspace_bytes=64 << 20)),
                       settings=settings)
    try:
        r = box.exec(["bash", "-c", "mkdir -p $(printf 'd/%.0s' $(seq 1 300))"])
        assert r.limit and "deeper than" in r.limit
        # Unmeasurable now: 8 x 50 MiB used to land whole (402 MiB against 64).
        r = box.exec(["bash", "-c", "for i in 1 2 3 4 5 6 7 8; do "
                      "head -c 50M /dev/zero > f$i; done; du -sm /workspace | cut -f1"])
        assert r.limit and "remove the excess" in r.limit, r.limit
        assert int(r.stdout.split()[-1]) < 64, r.stdout
        # The researcher repairs it, and the next command has its quota back.
        r = box.exec(["bash", "-c", "rm -rf /workspace/d /workspace/f*"])
        assert r.returncode == 0, r.stderr
        r = box.exec(["bash", "-c", "head -c 10M /dev/zero > g && du -sm /workspace"])
        assert r.returncode == 0 and r.limit is None, (r.stderr, r.limit)
    finally:
        box.terminate()
