"""Which build of a task a stored submission was scored on.

A rebuilt task (another build seed, other data, another teacher) keeps its old submissions in
the store under the same task name, possibly with as many test rows. Each submission stores the
``Scorer.fingerprint`` of the build it was scored on; only submissions of the served build are
compared with new ones (exact copies, probes, the Ladder), scored again, or ranked.

A submission stored before fingerprints were kept (NULL) counts as this build's only when it
has as many rows and its stored predictions score exactly its stored accuracies and PGRs here:
a build with other rows, labels, parts or references gives other numbers. The scoring server
writes that verdict into the row when it loads the task (``adopt_legacy``), so its queries
compare one column; report code calls ``same_build`` on rows it already holds.
"""

from __future__ import annotations

import math

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aarlab.scoring.probes import unpack
from aarlab.scoring.tables import Submission
from aarlab.tasks.scorer import Scorer

_STORED = ("acc_test", "acc_feedback", "acc_final", "pgr_test", "pgr_feedback", "pgr_final")


def same_build(sub: Submission, scorer: Scorer) -> bool:
    """Whether ``sub`` was scored on the build ``scorer`` scores on."""
    if sub.build_fingerprint is not None:
        return sub.build_fingerprint == scorer.fingerprint
    return _rescores_the_same(sub, scorer)


def _rescores_the_same(sub: Submission, scorer: Scorer) -> bool:
    n = len(scorer.test_ids)
    if sub.n_rows != n:
        return False
    pred = unpack(sub.predictions, n)
    if len(pred) != n:  # a blob too short for n rows is no prediction of these rows
        return False
    score = scorer.score(pred)
    now = (score.accuracy["test"], score.accuracy["feedback"], score.accuracy["final"],
           score.pgr["test"], score.pgr["feedback"], score.pgr["final"])
    stored = [getattr(sub, c) for c in _STORED]
    return None not in stored and all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
                                      for a, b in zip(now, stored, strict=True))


def adopt_legacy(s: Session, task: str, scorer: Scorer) -> int:
    """Stamp this build's fingerprint on the task's unstamped rows that were scored on it;
    return how many. The rest stay NULL and are never compared with this build's."""
    rows = s.scalars(select(Submission).where(Submission.task == task,
                                              Submission.build_fingerprint.is_(None),
                                              Submission.n_rows == len(scorer.test_ids)))
    ids = [x.id for x in rows if _rescores_the_same(x, scorer)]
    for i in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
        s.execute(update(Submission).where(Submission.id.in_(ids[i:i + 500]))
                  .values(build_fingerprint=scorer.fingerprint))
    return len(ids)
