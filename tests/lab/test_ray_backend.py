"""The lab on a real local Ray cluster (a head and a worker node, each one CPU).

The same orchestrator as the local backend runs here; only where sandboxes live changes. The
nodes get the kit through the lab server's kit API and reach the server over TCP through each
actor's forwarding socket, as they would on separate machines.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from aarlab.commands.run import status_table
from aarlab.config import Settings
from aarlab.forum.tables import Finding, Snapshot
from aarlab.lab.backends import BackendOptions
from aarlab.lab.orchestrator import Lab, LabOptions
from aarlab.lab.report import write_report
from aarlab.lab.status import member_rows
from aarlab.lab.tables import LabEvent, LabMember, LabRun
from aarlab.sandbox.bwrap import sandbox_available
from aarlab.scoring.tables import Submission
from aarlab.store.db import Store

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

BWRAP, WHY = sandbox_available()
pytestmark = pytest.mark.skipif(not BWRAP, reason=f"bubblewrap cannot run here: {WHY}")
OBJECT_STORE = 80 << 20


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    ray.init(address=cluster.address, namespace="aarlab", log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _home(tmp_path: Path, tiny_tweets, sources: Path, name: str) -> Settings:
    kit, key = tiny_tweets
    home = tmp_path / name
    shutil.copytree(kit.dir, home / "tasks" / "tweets" / "kit")
    shutil.copytree(key.dir, home / "answer-keys" / "tweets")
    return Settings(home=home, sources_root=sources)


def _layout(settings: Settings, lab_id: int) -> set[str]:
    """The lab's files, with researcher names made generic (they carry the lab id) and so are
    the snapshot ids of adopted specs (content hashes of notebooks that hold times) and the
    submission ids of submitted predictions."""
    root = settings.home / "labs" / str(lab_id)
    out = set()
    for p in root.rglob("*"):
        parts = list(p.relative_to(root).parts)
        if parts[0] == "workspaces" and len(parts) > 1:
            parts[1] = "<researcher>"
            if len(parts) > 3 and parts[2] == "adopted":
                parts[3] = "<snapshot>"
            # How many submissions a researcher makes depends on what the other one has posted
            # by then (timing), so the copies are compared by kind, not by submission id.
            if len(parts) > 3 and parts[2] == "submitted":
                parts[3] = "<submission>" + Path(parts[3]).suffix
        if p.is_file() and p.suffix != ".sock":
            out.add("/".join(parts))
    return out


def _options(budget: float, backend: str) -> LabOptions:
    return LabOptions(task="tweets", researchers=2, budget_s=budget, max_experiments=4,
                      max_submissions=2, backend=BackendOptions(kind=backend))


def test_a_small_lab_on_ray_gives_the_local_results(tmp_path, tiny_tweets, settings,
                                                    ray_cluster):
    results = {}
    for backend in ("local", "ray"):
        s = _home(tmp_path, tiny_tweets, settings.sources_dir, backend)
        store = Store(s.database_url)
        lab = Lab(s, store, _options(120, backend))
        lab_id = lab.create()
        lab.run()
        summary = write_report(store, s, lab_id, tmp_path / backend / "reports", threads=1)
        if backend == "ray":  # each researcher's node reached the server on a port of its own
            assert len(set(lab.backend.ports.values())) == 2
        with store.session() as db:
            run = db.get(LabRun, lab_id)
            members = list(db.scalars(select(LabMember)))
            placements = [e.payload for e in db.scalars(
                select(LabEvent).where(LabEvent.kind == "placement"))]
            assert run.status == "finished"
            assert all(m.status == "done" and m.restarts == 0 for m in members), \
                [(m.status, m.restarts) for m in members]
            assert db.scalars(select(Submission)).first() is not None
            assert db.scalars(select(Finding)).first() is not None
            # Code snapshots travel through the server's snapshot API from any node.
            assert db.scalars(select(Snapshot)).first() is not None
            # The live table says where each researcher runs.
            rows = member_rows(db, run)
            assert {r["backend"] for r in rows} == {backend}
            assert all(r["node"] for r in rows) == (backend == "ray")
            table = status_table(lab_id, "tweets", rows, 0.0)
            assert ("node" in [c.header for c in table.columns]) == (backend == "ray")
        results[backend] = (summary, _layout(s, lab_id), placements)

    (local, local_files, _), (remote, ray_files, placements) = results["local"], results["ray"]
    # Same results layout: the summary's fields, the lab directory, the researchers' notebooks.
    assert set(local) == set(remote)
    assert local_files == ray_files, local_files ^ ray_files
    assert any(f.startswith("workspaces/<researcher>/") for f in ray_files)
    assert remote["sandboxed"] is True and remote["experiments"] >= 4
    assert remote["best_final_pgr"] is not None
    # Each researcher ran as an actor; SPREAD put the two on the two nodes.
    assert {p["backend"] for p in placements} == {"ray"}
    assert len({p["node_id"] for p in placements}) == 2
    # The nodes fetched the kit through the server into their cache, not the answer key.
    fetched = list((tmp_path / "ray" / "cache" / "node-kits").glob("*/kit/manifest.json"))
    assert len(fetched) == 1
    assert not any("answer" in str(p) for p in (tmp_path / "ray" / "cache").rglob("*"))


def _counts(store: Store) -> tuple[set[int], set[int]]:
    with store.session() as db:
        return set(db.scalars(select(Submission.id))), set(db.scalars(select(Finding.id)))


def _socket_dirs() -> set[Path]:
    """The forwarding-socket directories on this machine (all Ray nodes of the test are here)."""
    tmp, parent = Path(tempfile.gettempdir()), f"aarlab-fwd-{os.getuid()}"
    return ({p for p in tmp.glob("aarlab-fwd-*") if p.name != parent}
            | set((tmp / parent).glob("*")))


def _start_ray_lab(s: Settings) -> tuple[Lab, Store, threading.Thread]:
    """A 2-researcher Ray lab with room for a restart, running in a thread."""
    store = Store(s.database_url)
    options = _options(150, "ray").model_copy(update={"max_experiments": 8,
                                                      "max_submissions": 4})
    lab = Lab(s, store, options)
    lab.create()
    runner = threading.Thread(target=lab.run, daemon=True)
    runner.start()
    return lab, store, runner


def _finished_after_a_restart(runner: threading.Thread, store: Store,
                              before: tuple[set[int], set[int]], member) -> list[LabEvent]:
    """Wait for the lab; check nothing was lost and ``member`` was restarted; its events."""
    runner.join(timeout=300)
    assert not runner.is_alive(), "the lab did not finish"
    after = _counts(store)
    assert before[0] <= after[0] and before[1] <= after[1], "a submission or finding was lost"
    with store.session() as db:
        row = db.get(LabMember, member.member_id)
        assert row.restarts >= 1 and row.status == "done"
        return list(db.scalars(select(LabEvent).where(
            LabEvent.researcher_id == member.researcher_id).order_by(LabEvent.id)))


def test_a_killed_researcher_actor_is_restarted_and_nothing_is_lost(tmp_path, tiny_tweets,
                                                                     settings, ray_cluster):
    dirs_before = _socket_dirs()
    lab, store, runner = _start_ray_lab(_home(tmp_path, tiny_tweets, settings.sources_dir,
                                              "kill"))
    victim = lab.members[0]

    deadline = time.monotonic() + 120
    before: tuple[set[int], set[int]] = (set(), set())
    while time.monotonic() < deadline:
        time.sleep(1)
        with store.session() as db:
            mine = db.scalars(select(Submission.id).where(
                Submission.researcher_id == victim.researcher_id)).first()
        if mine is not None:
            before = _counts(store)
            break
    assert before[0], "the researcher submitted nothing in time"
    handle = lab.backend.actor(victim.name)
    first_pid = lab.backend.placement(victim.name)["pid"]
    with store.session() as db:
        last_event = max(db.scalars(select(LabEvent.id)))
    ray.kill(handle, no_restart=False)  # as a crash would: Ray may bring it back

    events = _finished_after_a_restart(runner, store, before, victim)
    placements = [e.payload for e in events if e.kind == "placement"]
    assert len(placements) >= 2 and placements[-1]["pid"] != first_pid
    # It went on researching after the restart.
    assert any(e.kind == "experiment" and e.id > last_event for e in events)
    # The restarted actor took over its predecessor's socket directory, and the end of the
    # lab closed every actor: nothing is left behind in /tmp.
    assert _socket_dirs() <= dirs_before


def test_nodes_can_take_the_kit_from_a_shared_path(tmp_path, tiny_tweets, settings,
                                                   ray_cluster):
    s = _home(tmp_path, tiny_tweets, settings.sources_dir, "shared")
    shared = tmp_path / "shared-fs" / "tweets-kit"  # stands in for an NFS or bucket path
    shutil.copytree(s.home / "tasks" / "tweets" / "kit", shared)
    store = Store(s.database_url)
    options = LabOptions(task="tweets", researchers=1, budget_s=60, max_experiments=1,
                         max_submissions=0, backend=BackendOptions(
                             kind="ray", kit_url=shared.as_uri()))
    lab = Lab(s, store, options)
    lab.create()
    lab.run()
    with store.session() as db:
        assert db.scalars(select(LabEvent).where(LabEvent.kind == "experiment")).first()
    cache = s.home / "cache" / "node-kits"
    assert [p.parent.parent.name.split("-")[0] for p in cache.glob("*/kit/manifest.json")] \
        == ["shared"]


def test_a_lost_node_moves_its_researcher_to_another_node(tmp_path, tiny_tweets, settings,
                                                          ray_cluster):
    """Run last in this module: it takes a node away from the shared cluster."""
    ray_cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    ray_cluster.wait_for_nodes()
    lab, store, runner = _start_ray_lab(_home(tmp_path, tiny_tweets, settings.sources_dir,
                                              "node"))

    # Two researchers on three one-CPU nodes: at least one is not on the head, which stays.
    head = ray_cluster.head_node.node_id
    deadline, victim = time.monotonic() + 120, None
    while time.monotonic() < deadline and victim is None:
        time.sleep(1)
        with store.session() as db:
            done = {e.researcher_id for e in db.scalars(
                select(LabEvent).where(LabEvent.kind == "experiment"))}
        for m in lab.members:
            node = lab.backend.placement(m.name).get("node_id")
            if m.researcher_id in done and node not in (None, head):
                victim = (m, node)
    assert victim is not None, "no researcher got going on a worker node in time"
    member, node_id = victim
    node = next(n for n in ray_cluster.worker_nodes if n.node_id == node_id)
    before = _counts(store)
    ray_cluster.remove_node(node, allow_graceful=False)  # the machine is gone

    events = _finished_after_a_restart(runner, store, before, member)
    nodes = [e.payload["node_id"] for e in events if e.kind == "placement"]
    assert nodes[0] == node_id and nodes[-1] in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
