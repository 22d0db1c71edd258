"""Data checks: exact and near-duplicate questions, answers that disagree, and train/test overlap."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

NEAR = 0.8  # character-trigram Jaccard similarity from which two questions count as near-duplicates


def normalize(text: str) -> str:
    """Lowercase, punctuation dropped, whitespace collapsed: what 'the same question' means for exact checks."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def question_of(row: dict) -> str:
    """The text to compare for a canonical row: the prompt, the user turns, or the text."""
    if row.get("messages"):
        return "\n".join(t["content"] for t in row["messages"] if t["role"] == "user")
    return row.get("prompt") or row.get("text") or ""


def answer_of(row: dict) -> str:
    if row.get("messages"):
        return "\n".join(t["content"] for t in row["messages"] if t["role"] == "assistant")
    return row.get("completion") or ""


def shingles(text: str, n: int = 3) -> set:
    t = f" {normalize(text)} "
    return {t[i:i + n] for i in range(max(1, len(t) - n + 1))}


def similar_pairs(left: list[str], right: list[str] | None = None, threshold: float = NEAR,
                  max_df: int = 200) -> list[tuple[int, int, float]]:
    """(i, j, similarity) for texts at or above `threshold` Jaccard similarity of character trigrams.

    Within one list when `right` is None (i < j), else between the lists. An inverted index over
    trigrams finds candidates; trigrams shared by more than `max_df` texts are skipped as uninformative.
    """
    a = [shingles(t) for t in left]
    b = a if right is None else [shingles(t) for t in right]
    index = defaultdict(list)
    for j, s in enumerate(b):
        for g in s:
            index[g].append(j)
    pairs = []
    for i, s in enumerate(a):
        shared = Counter(j for g in s if len(index[g]) <= max_df for j in index[g])
        for j, k in shared.items():
            if right is None and j <= i:
                continue
            sim = k / (len(s) + len(b[j]) - k)
            if sim >= threshold:
                pairs.append((i, j, round(sim, 3)))
    return sorted(pairs)


@dataclass
class DuplicateReport:
    """Duplicates inside one split: exact (same question and answer), conflicting answers, near-duplicates."""
    rows: int
    exact: list = field(default_factory=list)        # (i, j): same question and answer after normalizing
    conflicting: list = field(default_factory=list)  # (i, j): same question, different answers
    near: list = field(default_factory=list)         # (i, j, similarity): similar but not identical questions

    def __str__(self) -> str:
        return (f"{self.rows} rows: {len(self.exact)} exact duplicates, {len(self.conflicting)} same question with "
                f"different answers, {len(self.near)} near-duplicate questions (similarity ≥ {NEAR})")


@dataclass
class OverlapReport:
    """Rows of an evaluation split whose question also appears (exactly or nearly) in the training split."""
    split: str
    rows: int
    exact: list = field(default_factory=list)  # (eval index, train index)
    near: list = field(default_factory=list)   # (eval index, train index, similarity)

    def __str__(self) -> str:
        return (f"{self.split} vs train: {len(self.exact)} of {self.rows} questions also in train word for word, "
                f"{len(self.near)} nearly (similarity ≥ {NEAR})")


def find_duplicates(ds, *, threshold: float = NEAR) -> DuplicateReport:
    """Exact duplicates, same-question-different-answer pairs and near-duplicate questions within a dataset."""
    rows = list(ds)
    qs, ans = [normalize(question_of(r)) for r in rows], [normalize(answer_of(r)) for r in rows]
    report = DuplicateReport(len(rows))
    first: dict = {}
    for i, q in enumerate(qs):
        if q in first:
            j = first[q]
            (report.exact if ans[i] == ans[j] else report.conflicting).append((j, i))
        else:
            first[q] = i
    report.near = [(i, j, s) for i, j, s in similar_pairs(qs, threshold=threshold) if qs[i] != qs[j]]
    return report


def find_overlap(train, other, *, split: str = "test", threshold: float = NEAR) -> OverlapReport:
    """Questions of `other` that also occur in `train`: a leak that makes evaluation look better than it is."""
    tq = [normalize(question_of(r)) for r in train]
    oq = [normalize(question_of(r)) for r in other]
    where = {q: i for i, q in enumerate(tq)}
    report = OverlapReport(split, len(oq))
    report.exact = [(i, where[q]) for i, q in enumerate(oq) if q in where]
    report.near = [(i, j, s) for i, j, s in similar_pairs(oq, tq, threshold=threshold) if oq[i] != tq[j]]
    return report


def duplicate_groups(ds, *, near: bool = True, threshold: float = NEAR) -> list[list[int]]:
    """Row indices grouped so that the same question (and, with `near`, similar ones) share a group: what a split keeps on one side."""
    qs = [normalize(question_of(r)) for r in ds]
    parent = list(range(len(qs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}
    pairs = [(first.setdefault(q, i), i) for i, q in enumerate(qs)]
    for i, j in pairs + ([(i, j) for i, j, _ in similar_pairs(qs, threshold=threshold)] if near else []):
        parent[root(j)] = root(i)
    groups = defaultdict(list)
    for i in range(len(qs)):
        groups[root(i)].append(i)
    return sorted(groups.values())


def check_data(dd, *, threshold: float = NEAR, verbose: bool = True, examples: int = 3) -> dict:
    """Duplicates per split and overlap of every other split with train; prints a short report with examples."""
    out = {"duplicates": {k: find_duplicates(d, threshold=threshold) for k, d in dd.items()}, "overlap": {}}
    if "train" in dd:
        out["overlap"] = {k: find_overlap(dd["train"], d, split=k, threshold=threshold)
                          for k, d in dd.items() if k != "train"}
    if verbose:
        for k, rep in out["duplicates"].items():
            print(f"{k}: {rep}")
            for i, j, s in rep.near[:examples]:
                print(f"    {s:.2f}  {question_of(dd[k][i])!r}  ~  {question_of(dd[k][j])!r}")
        for k, rep in out["overlap"].items():
            print(rep)
            for i, j, s in rep.near[:examples]:
                print(f"    {s:.2f}  {question_of(dd[k][i])!r}  ~  train {question_of(dd['train'][j])!r}")
    return out
