"""Duplicate, conflicting-answer, near-duplicate and train/test overlap checks on hand-made rows."""
from pathlib import Path

from llmcourse import load_instruction_data
from llmcourse.data.checks import check_data, find_duplicates, find_overlap, normalize, similar_pairs

FIX = Path(__file__).parent / "fixtures"


def qa(q, a="A."):
    return {"prompt": q, "completion": a}


def test_normalize():
    assert normalize("  What IS Lamini?! ") == "what is lamini"


def test_exact_conflicting_and_near_duplicates():
    rows = [qa("How do I descale the K2 kettle?"), qa("how do i descale the k2 kettle"),
            qa("How do I descale the K2 kettle?", "Different."), qa("How do I descale the K2 kettles?"),
            qa("What colour is the sky?")]
    rep = find_duplicates(rows)
    assert rep.exact == [(0, 1)] and rep.conflicting == [(0, 2)]
    assert [(i, j) for i, j, _ in rep.near] == [(0, 3), (1, 3), (2, 3)]
    assert "1 exact duplicates, 1 same question with different answers, 3 near-duplicate" in str(rep)


def test_fixture_file_duplicates():
    rep = find_duplicates(load_instruction_data(FIX / "duplicates.jsonl", split="train", validation=0, verbose=False))
    assert rep.exact == [(0, 2), (0, 3)] and rep.near == []


def test_similarity_values():
    # trigrams {" ab", "abc", "bcd", "cd "} and {" ab", "abc", "bce", "ce "}: 2 shared of 6 distinct
    assert similar_pairs(["abcd", "abce", "zzzz"], threshold=0.3) == [(0, 1, 0.333)]
    assert similar_pairs(["abcd", "abce"], threshold=0.34) == []
    assert similar_pairs(["kettle"], ["kettle", "teapot"], threshold=1.0) == [(0, 0, 1.0)]


def test_overlap_between_test_and_train():
    train = [qa("When was Kettlebird founded?"), qa("Who founded Kettlebird?")]
    test = [qa("when was kettlebird founded"), qa("Who co-founded Kettlebird?"), qa("Where is the HQ?")]
    rep = find_overlap(train, test)
    assert rep.exact == [(0, 0)] and [(i, j) for i, j, _ in rep.near] == [(1, 1)]
    assert str(rep).startswith("test vs train: 1 of 3 questions also in train word for word, 1 nearly")


def test_check_data_on_messages(capsys):
    conv = lambda u, a: {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}  # noqa
    out = check_data({"train": [conv("Hi there", "Hello")], "test": [conv("hi there!", "Hey")]})
    assert out["overlap"]["test"].exact == [(0, 0)]
    assert "test vs train: 1 of 1" in capsys.readouterr().out
