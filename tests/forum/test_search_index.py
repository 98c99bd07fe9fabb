"""The FTS5 index stays exact through edits and periodic optimisation (real SQLite file, the
service directly; no HTTP needed for index bookkeeping)."""

from __future__ import annotations

from sqlalchemy import text

from aarlab.forum import search, service
from aarlab.forum.schemas import FindingEdit, FindingIn
from aarlab.store.db import Store
from aarlab.store.identity import add_researcher


def test_index_matches_heads_after_edits_and_optimize(tmp_path, monkeypatch):
    monkeypatch.setattr(search, "OPTIMIZE_EVERY", 2)
    store = Store(f"sqlite:///{tmp_path / 'lab.db'}")
    store.create_all()
    with store.session() as s:
        rid = add_researcher(s, "alice")[0].id
    ids = []
    for i in range(7):
        with store.session() as s:
            f = service.create_finding(s, rid, FindingIn(
                kind="insight", title=f"note {i}", body=f"word{i} shared", tags=[f"t{i % 2}"]))
            ids.append(f.id)
    with store.session() as s:
        service.edit_finding(s, rid, ids[3], FindingEdit(body="replaced shared"))

    def hits(q: str, **kw) -> list[int]:
        with store.session() as s:
            found, total = search.search(s, search.Query(q=q, **kw))
        assert total == len(found) or kw.get("limit")
        return sorted(f.id for f in found)

    assert hits("shared") == sorted(ids)
    assert hits("word3") == [] and hits("replaced") == [ids[3]]
    assert hits("word5") == [ids[5]]
    assert hits("shared", tag="t1") == [ids[1], ids[3], ids[5]]
    with store.session() as s:  # one FTS row per finding, no leftovers from edits
        assert s.execute(text("SELECT count(*) FROM findings_fts")).scalar() == 7
        page, total = search.search(s, search.Query(q="shared", limit=2, offset=6))
        assert len(page) == 1 and total == 7
        page, total = search.search(s, search.Query(q="shared", limit=2, offset=10))
        assert page == [] and total == 7
