"""Notebook 05's capstone pieces: the shipped example file, the abstention figure (exact bars and intervals),
and the retrieval baseline over training rows."""
import pandas as pd
import pytest

from llmcourse import CourseError, Retriever, example_task_file, load_instruction_data, plot_abstention, row_passages


def test_example_file_has_the_shape_of_a_users_file():
    path = example_task_file()
    assert path.name == "qa.csv" and (path.parent / "README.md").is_file()
    assert path.read_text(encoding="utf-8").splitlines()[0] == "question,answer"
    dd = load_instruction_data(path, validation=0.2, verbose=False)
    assert {k: len(v) for k, v in dd.items()} == {"train": 120, "validation": 30}
    assert 50 <= len(dd["train"]) + len(dd["validation"]) <= 200
    questions = list(dd["train"]["prompt"]) + list(dd["validation"]["prompt"])
    assert len(set(questions)) == len(questions)  # no question twice


def test_row_passages_let_retrieval_find_the_row_with_the_answer():
    rows = [{"prompt": "How long is the loan period?", "completion": "The standard loan period is 23 days."},
            {"prompt": "Who is the head librarian?", "completion": "The head librarian is Odile Thackeray."}]
    passages = row_passages(rows)
    assert [(p.source, p.title, p.text) for p in passages] == [
        ("row 1", rows[0]["prompt"], rows[0]["completion"]), ("row 2", rows[1]["prompt"], rows[1]["completion"])]
    best, _ = Retriever(passages).search("What is the name of the chief librarian?", k=1)[0]
    assert best.source == "row 2"
    with pytest.raises(CourseError, match="question/answer rows"):
        row_passages([{"text": "a page"}])


def test_abstention_plot_draws_each_share_with_its_interval():
    table = pd.DataFrame({"n": [48, 12], "before": [0.25, 0.0], "before_low": [0.15, 0.0], "before_high": [0.39, 0.24],
                          "after": [0.75, 0.5], "after_low": [0.61, 0.25], "after_high": [0.85, 0.75]},
                         index=["unseen: answered with an abstention", "test: key fact"])
    ax = plot_abstention(table).axes[0]
    bars = ax.patches
    assert [round(b.get_height(), 2) for b in bars] == [0.25, 0.0, 0.75, 0.5]
    assert [round(b.get_x() + b.get_width() / 2, 2) for b in bars] == [-0.19, 0.81, 0.19, 1.19]
    assert [b.get_facecolor()[:3] for b in bars[:2]] != [b.get_facecolor()[:3] for b in bars[2:]]
    # one vertical error line per bar, from the interval's low end to its high end
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    assert sorted((round(s[0][1], 2), round(s[1][1], 2)) for s in segments) == sorted(
        [(0.15, 0.39), (0.0, 0.24), (0.61, 0.85), (0.25, 0.75)])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before", "after"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "unseen:\nanswered with an abstention\n(48 questions)", "test:\nkey fact\n(12 questions)"]


def test_abstention_intervals_count_each_share_with_its_wilson_interval():
    from llmcourse.evaluation.abstention import ABSTENTION, AbstentionResult
    from llmcourse.evaluation.evaluate import EvalResult

    def result(unseen_abstaining, test_right):
        rows = [{"split": "unseen", "prediction": ABSTENTION if i < unseen_abstaining else "It is 27 months.",
                 "key_fact": 0.0} for i in range(12)]
        rows += [{"split": "test", "prediction": "The K2 warranty is 27 months.", "key_fact": float(i < test_right)}
                 for i in range(4)]
        return EvalResult("x", pd.DataFrame(rows), pd.DataFrame())

    t = AbstentionResult(result(0, 0), result(3, 4), run=None, mix=None).intervals()
    unseen = t.loc["unseen: answered with an abstention"]
    assert unseen["n"] == 12 and unseen["before"] == 0.0 and unseen["after"] == 0.25
    assert (unseen["before_low"], round(unseen["before_high"], 4)) == (0.0, 0.2425)  # Wilson, 0 of 12
    assert (round(unseen["after_low"], 4), round(unseen["after_high"], 4)) == (0.0889, 0.5323)  # Wilson, 3 of 12
    key = t.loc["test: key fact"]
    assert key["n"] == 4 and key["after"] == 1.0 and key["after_high"] == 1.0 and round(key["after_low"], 4) == 0.5101
    assert t.loc["test: answered with an abstention", "after"] == 0.0
    differences = AbstentionResult(result(0, 0), result(3, 4), run=None, mix=None).differences()
    assert [(d.metric, d.n, d.mean) for d in differences] == [
        ("unseen: abstained", 12, 0.25), ("test: answered", 4, 0.0), ("test: key fact", 4, 1.0)]
    assert differences[2].settles and differences[2].low == 1.0  # every one of the 4 went from wrong to right
