"""The weak teacher: a bag-of-words model (TF-IDF + logistic regression) on the small gold set.

For pairwise rows the teacher sees ``tfidf(first) - tfidf(second)`` of the candidate texts, so it
judges the two candidates by their own words. The seed fixes the stochastic optimiser's order
(averaged SGD on the logistic loss), which is where the weak floor's seed variance comes from.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier

from aarlab.kits.formats import candidate_texts


class TfidfTeacher:
    def __init__(self, fmt: str, seed: int, alpha: float = 1e-4, max_features: int = 50_000):
        self.fmt = fmt
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2), min_df=2, max_features=max_features, sublinear_tf=True
        )
        self.clf = SGDClassifier(
            loss="log_loss", alpha=alpha, max_iter=50, tol=None, average=True, random_state=seed
        )

    def _x(self, rows: list[dict], fit: bool = False):
        if self.fmt == "binary":
            texts = [candidate_texts(self.fmt, r)[0] for r in rows]
            return self.vectorizer.fit_transform(texts) if fit else self.vectorizer.transform(texts)
        first = [_hyp(r, "first") for r in rows]
        second = [_hyp(r, "second") for r in rows]
        if fit:
            self.vectorizer.fit(first + second)
        diff = self.vectorizer.transform(first) - self.vectorizer.transform(second)
        return sparse.csr_matrix(diff)

    def fit(self, rows: list[dict], labels: np.ndarray) -> TfidfTeacher:
        x = self._x(rows, fit=True)
        if self.fmt == "pairwise":
            # Add each pair swapped as well: the teacher must be symmetric in A/B.
            x = sparse.vstack([x, -x]).tocsr()
            labels = np.concatenate([labels, 1 - labels])
        self.clf.fit(x, labels)
        return self

    def predict_proba(self, rows: list[dict]) -> np.ndarray:
        return self.clf.predict_proba(self._x(rows)).astype(np.float32)


def _hyp(row: dict, which: str) -> str:
    # Candidate words only: the shared prompt cancels in a bag-of-words difference anyway.
    return row[which]
