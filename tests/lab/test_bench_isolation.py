"""``bench/lab.py --isolate``: each run in a home of its own, so the runs of one bench are
independent labs (none starts from an earlier run's forum, snapshots or Ladder)."""

from __future__ import annotations

import shutil

from sqlalchemy import select

import bench_scripts
from aarlab.lab.tables import LabRun
from aarlab.scoring.tables import Submission
from aarlab.tasks.paths import answer_key_dir, kit_dir


def test_an_isolated_run_gets_copies_of_the_task_and_a_store_of_its_own(tiny_snli, settings):
    kit, key = tiny_snli
    bench = bench_scripts.load("lab")
    own, store = bench.isolated(settings, ["snli-pref"], seed=4)
    try:
        assert own.home != settings.home and own.home.parent == settings.home / "bench-runs"
        assert own.database_url != settings.database_url
        assert str(own.home) in own.database_url
        for src, dst in ((kit.dir, kit_dir(own, "snli-pref")),
                         (key.dir, answer_key_dir(own, "snli-pref"))):
            assert dst.is_dir() and dst != src
            assert sorted(p.name for p in dst.iterdir()) == sorted(p.name for p in src.iterdir())
        assert own.snapshots_dir.is_relative_to(own.home)
        # its store is a fresh SQLite file in its home: no lab, no submission
        assert not (own.home / "aarlab.db").exists()
        import aarlab.server.app  # noqa: F401  (registers every table, as the lab does)
        store.create_all()
        with store.session() as s:
            assert s.scalars(select(LabRun)).all() == []
            assert s.scalars(select(Submission)).all() == []
        assert (own.home / "aarlab.db").is_file()
    finally:
        shutil.rmtree(own.home, ignore_errors=True)
