"""evaluate_model and its parts on hand-made questions, a scripted fake LLM and the tiny random model."""
import json
import math

import datasets
import pytest
import torch

from llmcourse.core.errors import CourseError
from llmcourse.evaluation.evaluate import (answer_loss, evaluate_model, judge_agreement, judge_answers, question_set,
                                          score_table, summarize, worst_answers)
from llmcourse.models.loading import load_model

ROWS = {
    "test": [("How long is the K2 warranty?", "The K2 warranty lasts 27 months.", "f1-q4", "f1"),
             ("What code means no water?", "Error E17 means the kettle is empty.", "f2-q4", "f2")],
    "unseen": [("Who is the CTO?", "The CTO is Rasmus Achterberg.", "f3-q1", "f3")],
}


@pytest.fixture
def data():
    return datasets.DatasetDict({split: datasets.Dataset.from_dict({
        "prompt": [r[0] for r in rows], "completion": [r[1] for r in rows], "id": [r[2] for r in rows],
        "fact_id": [r[3] for r in rows], "source": ["x.md"] * len(rows)}) for split, rows in ROWS.items()})


class Scripted:
    """An LLM that answers from a dict (question -> answer) and records what it was asked."""
    name = "scripted"

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def complete(self, prompts):
        self.asked += prompts
        return [self.answers.get(p, "I don't know.") if isinstance(p, str) else "I don't know." for p in prompts]


def test_question_set_renames_and_limits(data):
    qs = question_set(data, ("test", "unseen"))
    assert list(qs.columns) == ["id", "fact_id", "split", "question", "reference", "source"]
    assert list(qs["split"]) == ["test", "test", "unseen"]
    assert len(question_set(data, "test", limit=1)) == 1
    with pytest.raises(CourseError, match="no split 'valid'"):
        question_set(data, "valid")


def test_score_table_and_summary_exact_values(data):
    qs = question_set(data)
    table = score_table(qs, ["the K2 warranty lasts 27 months", "No idea.", "Rasmus Achterberg"])
    assert list(table["exact_match"]) == [1.0, 0.0, 0.0]
    assert list(table["key_fact"]) == [1.0, 0.0, 1.0]
    s = summarize(table)
    assert list(s.index) == ["test", "unseen", "all"] and list(s["n"]) == [2, 1, 3]
    assert s.loc["test", "exact_match"] == 0.5 and s.loc["all", "key_fact"] == pytest.approx(2 / 3)


def test_evaluate_model_scores_the_answers_of_any_llm(data):
    perfect = {q: a for rows in ROWS.values() for q, a, *_ in rows}
    result = evaluate_model(Scripted(perfect), data)
    assert result.summary.loc["all", "exact_match"] == 1.0 and "loss" not in result.summary  # no local model
    wrong = evaluate_model(Scripted({}), data, name="knows nothing")
    assert wrong.summary.loc["all", "token_f1"] < 0.2 and wrong.name == "knows nothing"
    assert wrong.info["questions"] == 3


def test_evaluate_with_retrieval_sends_context(data):
    llm = Scripted({})
    evaluate_model(llm, data, retrieval=True, splits="test")
    questions = [q for q, *_ in ROWS["test"]]
    assert [turns[-1]["content"] for turns in llm.asked] == questions  # each question, after its context
    assert all(turns[0]["role"] == "system" and "[" in turns[0]["content"] for turns in llm.asked)


def test_answer_loss_matches_the_model_loss_on_answer_tokens():
    model, tok = load_model("tiny-random")
    from llmcourse.data.tokenization import tokenize_example

    row = tokenize_example("Hi?", "Hello there.", tok)
    batch = {k: torch.tensor([row[k]]) for k in ("input_ids", "attention_mask", "labels")}
    expected = model(**batch).loss.item()  # transformers' own shifted, masked mean
    assert answer_loss(model, tok, ["Hi?"], ["Hello there."]) == pytest.approx(expected, rel=1e-5)
    prompts, answers = ["Hi?", "A much longer question here?", "Q"], ["Hello there.", "No.", "A long answer with many words."]
    one_by_one = answer_loss(model, tok, prompts, answers, batch_size=1)
    assert answer_loss(model, tok, prompts, answers, batch_size=3) == pytest.approx(one_by_one, rel=1e-4)  # padding-free


def test_evaluate_local_model_adds_loss_and_perplexity(data):
    result = evaluate_model("tiny-random", data, max_new_tokens=3)
    s = result.summary
    assert {"loss", "perplexity"} <= set(s.columns)
    assert s.loc["all", "perplexity"] == pytest.approx(math.exp(s.loc["all", "loss"]))
    assert s.loc["all", "loss"] > 5  # an untrained 49k-word model is close to uniform: ln(49152) ~ 10.8
    model, tok = load_model("tiny-random")
    t = result.table  # each answer's own loss, for paired comparisons; the summary weights every token the same
    assert t.loc[0, "loss"] == pytest.approx(answer_loss(model, tok, [t.loc[0, "question"]], [t.loc[0, "reference"]]),
                                             rel=1e-4)
    assert s.loc["all", "loss"] == pytest.approx(answer_loss(model, tok, list(t["question"]), list(t["reference"])),
                                                 rel=1e-4)


def test_answer_losses_per_row_are_the_same_without_the_fast_path(monkeypatch):
    import llmcourse.evaluation.evaluate as ev

    model, tok = load_model("tiny-random")
    prompts, answers = ["Hi?", "A much longer question here?"], ["Hello there.", "No."]
    fast_sums, counts = ev.answer_token_losses(model, tok, prompts, answers)
    monkeypatch.setattr(ev, "can_skip_unlabelled_logits", lambda m: False)
    plain_sums, plain_counts = ev.answer_token_losses(model, tok, prompts, answers)
    assert plain_counts == counts and plain_sums == pytest.approx(fast_sums, rel=1e-4)


def test_judge_parses_yes_no_and_marks_the_rest_unclear(data):
    table = score_table(question_set(data), ["a", "b", "c"])

    class Judge:
        def complete(self, prompts):
            assert "Reference answer: The K2 warranty lasts 27 months." in prompts[0]
            return ["Yes, it does.", "no", "It depends"]

    verdicts = judge_answers(Judge(), table)
    assert verdicts[:2] == [1.0, 0.0] and math.isnan(verdicts[2])
    result = evaluate_model(Scripted({}), data, judge=Scripted({}))
    assert result.summary["judge"].isna().all()  # "I don't know." is neither yes nor no


def test_judge_agreement_reports_kappa_next_to_raw_agreement():
    always_yes = judge_agreement([1.0] * 16, [1.0] * 10 + [0.0] * 6, name="yes-judge", against="key fact")
    assert (always_yes.n, always_yes.agreement, always_yes.kappa, always_yes.always_yes) == (16, 0.625, 0.0, 0.625)
    assert str(always_yes).startswith("yes-judge agrees with key fact on 10 of 16 answers (62%); Cohen's kappa 0.00")
    # [[20, 5], [10, 15]]: observed 0.7, chance 0.5, kappa 0.4; one answer without a verdict is left out
    judge = [1.0] * 25 + [0.0] * 25 + [float("nan")]
    mine = [1.0] * 20 + [0.0] * 5 + [1.0] * 10 + [0.0] * 15 + [1.0]
    agreement = judge_agreement(judge, mine)
    assert (agreement.n, agreement.agreement, round(agreement.kappa, 10), agreement.left_out) == (50, 0.7, 0.4, 1)
    assert str(agreement).endswith("; 1 without a verdict left out")
    silent = judge_agreement([float("nan")] * 3, [1.0, 0.0, 1.0], name="mute")
    assert silent.n == 0 and str(silent) == "mute gave no verdict on any of the 3 answers: there is no agreement to measure"
    with pytest.raises(CourseError, match="one verdict per grade"):
        judge_agreement([1.0], [1.0, 0.0])


def test_worst_answers_are_grouped_by_split(data):
    table = score_table(question_set(data), ["the K2 warranty lasts 27 months", "No idea.", "Rasmus Achterberg"])
    worst = worst_answers(table, n=1)
    assert list(worst["split"]) == ["test", "unseen"]
    assert list(worst["id"]) == ["f2-q4", "f3-q1"]
    assert list(worst.columns[:5]) == ["split", "id", "question", "reference", "prediction"]


def test_save_report_writes_json_and_csv(data, tmp_path):
    result = evaluate_model(Scripted({}), data, judge=Scripted({}))
    path = result.save(tmp_path / "eval")
    report = json.loads(path.read_text())
    assert report["name"] == "scripted" and report["metrics"]["all"]["n"] == 3
    assert report["metrics"]["test"]["judge"] is None  # NaN is not valid JSON
    assert (tmp_path / "eval" / "answers.csv").read_text().count("\n") == 4


def test_evaluate_a_training_run_uses_its_model_and_template(data):
    from types import SimpleNamespace

    model, tok = load_model("tiny-random")
    run = SimpleNamespace(name="r1", history=[], config=SimpleNamespace(template="qa"), model=model, tokenizer=tok)
    result = evaluate_model(run, data, splits="test", max_new_tokens=2)
    assert result.name == "r1" and result.info["template"] == "qa" and result.info["questions"] == 2
