"""LLM researchers in a real lab: scripted conversations over each provider's wire format drive
the real loop, real sandboxes, the real scoring server and forum; the store and the transcripts
show what happened and what it cost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from llm_standins import (
    CANARY_KEY,
    StandIn,
    Turn,
    call,
    first_user_text,
    needs_bwrap,
    system_text,
    tool_results,
)
from sqlalchemy import select

from aarlab.forum.tables import Finding
from aarlab.lab.tables import LabEvent, LabMember
from aarlab.researchers.llm.accounting import totals
from aarlab.researchers.llm.config import LlmOptions
from aarlab.researchers.llm.tables import LlmCall, LlmSession
from aarlab.researchers.llm.transcript import read_transcript
from aarlab.scoring.tables import Submission

pytestmark = needs_bwrap

METHOD = """\
import json, os
from aarlab.kits.kit import TaskKit
from aarlab.w2s.runner import run_experiment
kit = TaskKit(os.environ["AARLAB_KIT"])
seed = kit.seeds[0]
res = run_experiment(kit, {"steps": [{"method": "weak_soft", "params": {}}]}, seeds=[seed],
                     signals=True)
print("signals", {k: round(v, 4) for k, v in res.signals.items()})
pred = kit.labels_to_values(res[seed])
json.dump(dict(zip(kit.ids("test"), pred)), open("predictions.json", "w"))
"""

# $ per million tokens of claude-opus-4-6 in the default table: input, output, read, write.
OPUS = (5.0, 25.0, 0.50, 6.25)


def dollars(usages, price=OPUS) -> float:
    return sum(sum(n * p for n, p in zip(u, price, strict=True)) for u in usages) / 1e6


def receipt_of(body: dict) -> dict:
    return json.loads(tool_results(body)[0])


def test_scripted_agent_researches_submits_posts_and_is_accounted(run_lab):
    seen: dict = {}

    def after_run(body):
        out = tool_results(body)[0]
        seen["run"] = out
        assert "exit code 0" in out, out
        return Turn("The baseline ran; submitting.",
                    [call("submit", path="predictions.json", method="weak_soft baseline")],
                    usage=(400, 60, 5200, 300))

    def after_submit(body):
        seen["receipt"] = receipt_of(body)
        sid = seen["receipt"]["id"]
        return Turn("Sharing the result.",
                    [call("forum_post", kind="result", title="weak_soft baseline",
                          body="Vanilla W2S on soft weak labels.", submission_id=sid,
                          tags=["baseline"]), call("leaderboard")],
                    usage=(500, 90, 5500, 400))

    session1 = [
        Turn("Plan: run the weak_soft baseline first.",
             [call("write_file", path="method.py", content=METHOD),
              call("notebook_write", text="Plan: weak_soft baseline, then confidence losses.")],
             usage=(2000, 400, 0, 4800)),
        Turn("", [call("shell", command="python method.py", timeout_s=240)],
             usage=(300, 50, 4800, 400)),
        after_run, after_submit,
        Turn("Done for this session.", usage=(200, 20, 6000, 100))]

    def session2_opens(body):
        seen["opening2"] = first_user_text(body)
        return Turn("", [call("forum_search", query="weak_soft"), call("notebook_read")],
                    usage=(1500, 40, 0, 3000))

    script = [*session1, session2_opens, Turn("Nothing new to add.", usage=(100, 10, 3000, 0))]
    usages = [t.usage for t in script if isinstance(t, Turn)] + [
        (400, 60, 5200, 300), (500, 90, 5500, 400), (1500, 40, 0, 3000)]
    with StandIn("anthropic", script, key=CANARY_KEY) as api:
        lab, store = run_lab([f"llm:anthropic:claude-opus-4-6@{api.base_url}"],
                             llm=LlmOptions(max_sessions=2, max_turns=10, budget_usd=20))
        requests = api.requests
    assert len(requests) == 7 and not api.script

    # What the model was told: the task, its direction, the tools; memory in session 2.
    m = lab.members[0]
    system = system_text(requests[0])
    assert "tweets" in system and m.direction.text[:40] in system and "`shell`" in system
    assert "Plan: weak_soft baseline" in seen["opening2"]  # the notebook
    assert "weak_soft baseline" in seen["opening2"].split("Forum: best results")[1]  # the forum
    assert "heldout_agree" in seen["run"]
    # No gold label anywhere, and the two ways around that are ruled out in so many words.
    assert "no gold label of any split" in system and "train_label_acc" not in system
    assert "Do not label rows yourself" in system and "original dataset" in system

    with store.session() as s:
        sub = s.scalar(select(Submission).where(Submission.researcher_id == m.researcher_id))
        finding = s.scalar(select(Finding).where(Finding.author_id == m.researcher_id))
        sessions = s.scalars(select(LlmSession).where(
            LlmSession.researcher_id == m.researcher_id).order_by(LlmSession.id)).all()
        calls = s.scalars(select(LlmCall).where(LlmCall.researcher_id == m.researcher_id)).all()
        tot = totals(s, [m.researcher_id])[m.researcher_id]
        member = s.get(LabMember, m.member_id)
        experiments = s.scalars(select(LabEvent).where(
            LabEvent.researcher_id == m.researcher_id, LabEvent.kind == "experiment")).all()
    # The work is real: a scored submission and a result finding pointing at it.
    assert sub is not None and sub.id == seen["receipt"]["id"] and sub.method == \
        "weak_soft baseline"
    assert finding.kind == "result" and finding.submission_id == sub.id
    assert [e.payload["command"] for e in experiments] == ["python method.py"]
    assert member.status == "done" and member.policy.startswith("llm:anthropic:")
    # Accounting: every call, every token kind, dollars from the price table.
    assert [x.end_reason for x in sessions] == ["stop", "stop"]
    assert [x.turns for x in sessions] == [5, 2] and len(calls) == 7
    assert tot.input_tokens == sum(u[0] for u in usages)
    assert tot.output_tokens == sum(u[1] for u in usages)
    assert tot.cache_read_tokens == sum(u[2] for u in usages)
    assert tot.cache_write_tokens == sum(u[3] for u in usages)
    assert tot.dollars == pytest.approx(dollars(usages))
    assert tot.seconds > 0 and tot.dollars_per_hour == pytest.approx(
        tot.dollars / (tot.seconds / 3600))
    # Transcripts live outside the sandbox, one per session, with every tool result.
    path = Path(sessions[0].transcript_path)
    assert path.is_file() and lab.lab_dir / "transcripts" in path.parents
    assert m.workspace not in path.parents
    lines = read_transcript(path)
    assert lines[0]["kind"] == "session" and lines[-1] == lines[-1] | {"kind": "end",
                                                                       "reason": "stop"}
    results = [r for x in lines if x["kind"] == "message" for r in x.get("results", [])]
    assert any(r["name"] == "submit" and '"released_pgr"' in r["content"] for r in results)
    assert path.with_suffix(".notebook.md").is_file()
    notebook = (m.workspace / "notebook.md").read_text()
    assert "Plan: weak_soft baseline" in notebook
    assert len(re.findall(r"lab: session \d ended \(stop\)", notebook)) == 2
    assert (m.workspace / "method.py").read_text() == METHOD


def test_openai_compatible_researcher_runs_beside_a_search_researcher(run_lab):
    script = [
        Turn("", [call("list_files", path="/kit", depth=1),
                  call("read_file", path="/kit/manifest.json", max_lines=3)],
             usage=(900, 40, 0, 0)),
        Turn("", [call("shell", command="echo $((6*7)) && exit 3")], usage=(300, 20, 800, 0)),
        Turn("Enough for today.", usage=(100, 10, 1000, 0))]
    with StandIn("openai", script, key=CANARY_KEY) as api:
        lab, store = run_lab([f"llm:openai:qwen2.5-7b-instruct@{api.base_url}", "search"],
                             llm=LlmOptions(max_sessions=1), max_experiments=1)
        second, third = api.requests[1], api.requests[2]
    listing, manifest = tool_results(second)
    assert "/kit/manifest.json" in listing and "features" in listing
    assert '"name"' in manifest and "more lines" in manifest
    assert tool_results(third)[0].startswith("exit code 3") and "42" in tool_results(third)[0]
    llm_member, search_member = lab.members
    with store.session() as s:
        rows = {r.id: r for r in s.scalars(select(LabMember))}
        assert rows[llm_member.member_id].policy.startswith("llm:openai:qwen2.5-7b-instruct@")
        assert rows[search_member.member_id].policy == "search"
        assert {r.status for r in rows.values()} == {"done"}
        tot = totals(s)
        assert set(tot) == {llm_member.researcher_id}  # the search researcher costs no tokens
        t = tot[llm_member.researcher_id]
        # prompt_tokens on the wire include cached ones; we count them apart.
        assert (t.input_tokens, t.cache_read_tokens, t.output_tokens) == (1300, 1800, 70)
        # A model on a loopback server costs $0 by default (issue 19): priced, not flagged.
        assert t.dollars == 0 and s.scalar(select(LlmSession.priced)) is True
        searched = s.scalars(select(LabEvent).where(
            LabEvent.researcher_id == search_member.researcher_id,
            LabEvent.kind == "experiment")).all()
        assert len(searched) == 1


@pytest.mark.parametrize("budget", [{"budget_usd": 0.05}, {"budget_tokens": 5000}])
def test_budget_reached_mid_session_ends_the_researcher_with_its_notebook(run_lab, budget):
    script = [
        Turn("", [call("notebook_write", text="Idea: logconf with a warm-up next.")],
             usage=(1000, 100, 0, 0)),  # $0.0075, 1100 tokens
        Turn("", [call("shell", command="touch ran-after-budget")],
             usage=(10000, 2000, 0, 0)),  # crosses either budget: $0.1075, 13100 tokens
        Turn("never sent", [call("shell", command="touch never")])]
    with StandIn("anthropic", script, key=CANARY_KEY) as api:
        lab, store = run_lab([f"llm:anthropic:claude-opus-4-6@{api.base_url}"],
                             llm=LlmOptions(max_sessions=5, **budget))
        assert len(api.requests) == 2  # no call after the budget, and no new session
    m = lab.members[0]
    with store.session() as s:
        session = s.scalar(select(LlmSession))
        assert s.scalar(select(LlmSession.id).where(LlmSession.id > session.id)) is None
        assert session.end_reason == "budget" and session.turns == 2
        assert s.get(LabMember, m.member_id).status == "done"
        status = s.scalars(select(LabEvent).where(LabEvent.kind == "status")).all()
        assert [e.payload["reason"] for e in status] == ["budget"]
    notebook = (m.workspace / "notebook.md").read_text()
    assert "Idea: logconf with a warm-up next." in notebook
    assert "session 1 ended (budget) after 2 model calls" in notebook
    assert not (m.workspace / "ran-after-budget").exists()  # stopped before acting on it
    end = read_transcript(Path(session.transcript_path))[-1]
    assert end["kind"] == "end" and end["reason"] == "budget"


def test_turn_limit_ends_a_session_and_the_next_starts_fresh(run_lab):
    script = [Turn("", [call("notebook_write", text="note one")]),
              Turn("", [call("notebook_read")]),
              Turn("", [call("notebook_read")]), Turn("bye")]
    with StandIn("anthropic", script, key=CANARY_KEY) as api:
        _, store = run_lab([f"llm:anthropic:claude-opus-4-6@{api.base_url}"],
                           llm=LlmOptions(max_turns=2, max_sessions=2))
        third = api.requests[2]
    assert len(third["messages"]) == 1 and "note one" in first_user_text(third)
    with store.session() as s:
        assert [r.end_reason for r in s.scalars(select(LlmSession))] == ["turns", "stop"]


def test_a_bad_api_key_stops_the_researcher_with_one_line(run_lab, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong")
    with StandIn("anthropic", [Turn("never")], key="the-right-key") as api:
        lab, store = run_lab([f"llm:anthropic:claude-opus-4-6@{api.base_url}"])
        assert len(api.requests) == 1  # a refused key is not retried
    with store.session() as s:
        assert s.get(LabMember, lab.members[0].member_id).status == "error"
        err = s.scalar(select(LabEvent).where(LabEvent.kind == "error"))
        assert s.scalar(select(LlmSession.end_reason)) == "fatal"
    assert "ANTHROPIC_API_KEY" in err.payload["text"] and "\n" not in err.payload["text"]


def test_malformed_tool_calls_come_back_as_errors_and_the_session_goes_on(run_lab):
    script = [
        Turn("", [call("shell")], raw_arguments="{not json"),
        Turn("", [call("rm_rf", path="/"), call("shell", cmd="ls"),
                  call("edit_file", path="missing.py", old_text="a", new_text="b")]),
        Turn("A long thought cut by the output limit", stop="length"),
        Turn("", [call("shell", command="python -c 'print(\"x\" * 50000)'")]),
        Turn("done")]
    with StandIn("openai", script, key=CANARY_KEY) as api:
        _, store = run_lab([f"llm:openai:qwen2.5-7b-instruct@{api.base_url}"],
                           llm=LlmOptions(max_sessions=1, output_chars=2000))
        bad_json, = tool_results(api.requests[1])
        unknown, bad_args, missing = tool_results(api.requests[2])
        nudge = api.requests[3]["messages"][-1]
        long_out, = tool_results(api.requests[4])
    assert bad_json.startswith("error: arguments must be a JSON object")
    assert unknown.startswith("error: no tool named 'rm_rf'") and "shell" in unknown
    assert bad_args.startswith("error: bad arguments") and "cmd" in bad_args
    assert missing.startswith("error:") and "missing.py" in missing
    assert nudge["role"] == "user" and "output limit" in nudge["content"]
    assert len(long_out) < 2200 and "characters cut here" in long_out
    with store.session() as s:
        assert s.scalar(select(LlmSession.end_reason)) == "stop"


def test_snapshots_go_up_and_come_back_through_the_sandbox(run_lab):
    seen = {}

    def download(body):
        seen["up"] = json.loads(tool_results(body)[1])
        return Turn("", [call("snapshot_download", snapshot_id=seen["up"]["id"],
                              target="copy")])

    script = [
        Turn("", [call("write_file", path="method/x.py", content="print('v1')\n"),
                  call("snapshot_upload", path="method", label="v1")]),
        download,
        Turn("", [call("read_file", path="copy/x.py"),
                  call("snapshot_download", snapshot_id="0" * 64, target="nope")]),
        Turn("done")]
    with StandIn("anthropic", script, key=CANARY_KEY) as api:
        lab, _ = run_lab([f"llm:anthropic:claude-opus-4-6@{api.base_url}"],
                         llm=LlmOptions(max_sessions=1))
        got = json.loads(tool_results(api.requests[2])[0])
        copied, missing = tool_results(api.requests[3])
    assert len(seen["up"]["id"]) == 64 and got["files"] == ["x.py"]
    assert copied == "print('v1')"
    assert missing.startswith("error:") and "\n" not in missing.strip()
    assert (lab.members[0].workspace / "copy" / "x.py").read_text() == "print('v1')\n"
