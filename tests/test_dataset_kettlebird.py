"""Consistency checks for the shipped Kettlebird course dataset.

Plain json/pathlib only: these tests do not import llmcourse.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "llmcourse" / "datasets" / "kettlebird"
DOCS = ROOT / "docs"
QA = ROOT / "qa.jsonl"
KEYS = {"id", "fact_id", "question", "answer", "source", "split"}
FICTIONAL_LINE = "> Fictional company, invented for the llmcourse finetuning course."
MAX_ANSWER_WORDS = 25


def _load_rows() -> list[dict]:
    rows = []
    with QA.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.strip(), f"qa.jsonl line {n} is blank"
            rows.append(json.loads(line))
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _load_rows()


@pytest.fixture(scope="module")
def facts(rows) -> dict[str, list[dict]]:
    by_fact: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_fact[r["fact_id"]].append(r)
    return dict(by_fact)


def _kind(fact_rows: list[dict]) -> str:
    return "unseen" if any(r["split"] == "unseen" for r in fact_rows) else "trained"


def test_every_line_is_json_with_exact_keys():
    with QA.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            obj = json.loads(line)
            assert isinstance(obj, dict), f"line {n} is not an object"
            assert set(obj) == KEYS, f"line {n} keys {sorted(obj)}"
            for k in KEYS:
                assert isinstance(obj[k], str) and obj[k].strip(), f"line {n}: empty {k}"
            assert obj["split"] in {"train", "test", "unseen"}, f"line {n}: split {obj['split']!r}"
            assert obj["id"].startswith(obj["fact_id"] + "-"), f"line {n}: id/fact_id mismatch"


def test_ids_unique(rows):
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))


def test_questions_unique_case_insensitive(rows):
    seen: dict[str, str] = {}
    for r in rows:
        key = " ".join(r["question"].lower().split())
        assert key not in seen, f"{r['id']} repeats the question of {seen[key]}"
        seen[key] = r["id"]


def test_trained_facts_have_three_train_one_test_one_answer(facts):
    for fid, fr in facts.items():
        if _kind(fr) != "trained":
            continue
        splits = sorted(r["split"] for r in fr)
        assert splits == ["test", "train", "train", "train"], f"{fid}: {splits}"
        assert len({r["answer"] for r in fr}) == 1, f"{fid}: answers differ"
        assert len({r["source"] for r in fr}) == 1, f"{fid}: sources differ"


def test_unseen_facts_have_two_unseen_rows_only(facts):
    for fid, fr in facts.items():
        if _kind(fr) != "unseen":
            continue
        assert [r["split"] for r in fr] == ["unseen", "unseen"], f"{fid} mixes unseen with train/test"
        assert len({r["answer"] for r in fr}) == 1, f"{fid}: answers differ"
        assert len({r["source"] for r in fr}) == 1, f"{fid}: sources differ"


def test_fact_counts(facts, rows):
    kinds = [_kind(fr) for fr in facts.values()]
    assert kinds.count("trained") >= 200
    assert kinds.count("unseen") >= 20
    assert len(rows) >= 888


def test_unseen_answers_never_trained(rows):
    trained_answers = {r["answer"] for r in rows if r["split"] in {"train", "test"}}
    for r in rows:
        if r["split"] == "unseen":
            assert r["answer"] not in trained_answers, r["id"]


def test_no_two_facts_share_an_answer(facts):
    owner: dict[str, str] = {}
    for fid, fr in facts.items():
        key = " ".join(fr[0]["answer"].lower().split())
        assert key not in owner, f"{fid} and {owner[key]} share an answer"
        owner[key] = fid


def test_answers_short(rows):
    for r in rows:
        n = len(r["answer"].split())
        assert n <= MAX_ANSWER_WORDS, f"{r['id']}: {n} words"


def test_sources_exist(rows):
    for r in rows:
        assert "/" not in r["source"] and r["source"].endswith(".md"), r["id"]
        assert (DOCS / r["source"]).is_file(), f"{r['id']}: missing docs/{r['source']}"


def test_doc_pages_have_title_and_fictional_line():
    pages = sorted(DOCS.glob("*.md"))
    assert 20 <= len(pages) <= 26, len(pages)
    for p in pages:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*\.md", p.name), f"{p.name} is not snake_case"
        lines = p.read_text(encoding="utf-8").splitlines()
        assert lines and lines[0].startswith("# ") and lines[0][2:].strip(), f"{p.name}: no title"
        assert FICTIONAL_LINE in lines[:3], f"{p.name}: missing fictional-company line"


def test_every_doc_page_is_used(rows):
    used = {r["source"] for r in rows}
    assert {p.name for p in DOCS.glob("*.md")} == used


NUMBER = re.compile(r"\d+(?:[.:]\d+)*")
CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*-?")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _key_tokens(answer: str) -> set[str]:
    toks = set(NUMBER.findall(answer)) | set(EMAIL.findall(answer))
    toks |= {c for c in CODE.findall(answer) if any(ch.isdigit() for ch in c)}
    return toks


def test_answer_key_tokens_appear_in_source_doc(facts):
    """Cheap consistency check: numbers, codes and emails in each answer are stated in its source page."""
    cache: dict[str, str] = {}
    problems = []
    for fid, fr in facts.items():
        src = fr[0]["source"]
        text = cache.setdefault(src, (DOCS / src).read_text(encoding="utf-8"))
        for tok in _key_tokens(fr[0]["answer"]):
            if tok not in text:
                problems.append(f"{fid}: {tok!r} not in {src}")
    assert not problems, "\n".join(problems)
