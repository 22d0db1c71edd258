"""Comparing models on the same questions, and finding or making the finetuned model to compare."""
import datasets
import matplotlib
import pytest

from llmcourse.evaluation.compare import compare_results, plot_comparison, side_by_side
from llmcourse.training.quick import quick_finetune
from llmcourse.training.runs import latest_run
from llmcourse.training.config import TrainConfig
from llmcourse.data.loading import load_instruction_data
from llmcourse.evaluation.evaluate import evaluate_model, question_set
from llmcourse.training.trainer import train

matplotlib.use("Agg")

DATA = datasets.DatasetDict({
    "test": datasets.Dataset.from_dict({"prompt": ["How long is the K2 warranty?", "What does E17 mean?"],
                                        "completion": ["The K2 warranty lasts 27 months.", "E17 means the kettle is empty."],
                                        "id": ["f1-q4", "f2-q4"], "fact_id": ["f1", "f2"], "source": ["w.md", "e.md"]}),
    "unseen": datasets.Dataset.from_dict({"prompt": ["Who is the CTO?"], "completion": ["The CTO is Rasmus Achterberg."],
                                          "id": ["f3-q1"], "fact_id": ["f3"], "source": ["c.md"]}),
})


class Scripted:
    def __init__(self, name, answers):
        self.name, self.answers = name, answers

    def complete(self, prompts):
        return [self.answers.get(p, "I don't know.") for p in prompts]


@pytest.fixture
def results():
    perfect = {"How long is the K2 warranty?": "27 months.", "Who is the CTO?": "The CTO is Rasmus Achterberg."}
    return [evaluate_model(Scripted("base", {}), DATA), evaluate_model(Scripted("tuned", perfect), DATA)]


def test_compare_table_has_a_row_per_model_and_split(results):
    table = compare_results(results)
    assert list(table.index) == [("base", "test"), ("base", "unseen"), ("tuned", "test"), ("tuned", "unseen")]
    assert table.loc[("tuned", "test"), "key_fact"] == 0.5 and table.loc[("tuned", "unseen"), "exact_match"] == 1.0
    assert table.loc[("base", "test"), "n"] == 2
    assert list(table.columns) == ["n", "exact_match", "exact_match_low", "exact_match_high", "token_f1", "token_f1_low",
                                   "token_f1_high", "key_fact", "key_fact_low", "key_fact_high"]
    # key fact is right/wrong: Wilson of 1/2; token F1 is graded (2/7 and 0): the bootstrap of those two
    assert table.loc[("tuned", "test"), ["key_fact_low", "key_fact_high"]].round(4).tolist() == [0.0945, 0.9055]
    assert table.loc[("tuned", "test"), ["token_f1_low", "token_f1_high"]].round(4).tolist() == [0.0, 0.5714]


def test_side_by_side_puts_each_models_answer_in_a_column(results):
    table = side_by_side(results)
    assert list(table.columns) == ["split", "question", "reference", "base", "tuned"]
    assert list(table["tuned"]) == ["27 months.", "I don't know.", "The CTO is Rasmus Achterberg."]
    other = evaluate_model(Scripted("other", {}), DATA, splits="test")
    with pytest.raises(ValueError, match="other questions"):
        side_by_side([results[0], other])


def test_plot_has_a_bar_per_model_and_split(results):
    table = compare_results(results)
    ax = plot_comparison(table, "key_fact").axes[0]
    assert len(ax.patches) == 4 and ax.get_ylabel() == "key fact"
    bars = [c for c in ax.containers if type(c).__name__ == "BarContainer"]
    errors = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert [round(p.get_height(), 3) for b in bars for p in b] == [0.0, 0.0, 0.5, 1.0]  # base test/unseen, tuned
    whiskers = [seg for e in errors for seg in e.lines[2][0].get_segments()]  # one vertical line per bar
    assert [(round(w[0][1], 4), round(w[1][1], 4)) for w in whiskers] == [(0.0, 0.6576), (0.0, 0.7935),
                                                                         (0.0945, 0.9055), (0.2065, 1.0)]
    bare = plot_comparison(table[["n", "key_fact"]], "key_fact").axes[0]  # a table without intervals: bars only
    assert len(bare.patches) == 4 and not [c for c in bare.containers if type(c).__name__ == "ErrorbarContainer"]


def test_quick_finetune_trains_only_the_asked_facts_and_is_not_a_full_run(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path))
    qs = question_set("kettlebird", ("test", "unseen"), limit=2)
    run = quick_finetune(qs, fast=True, model="tiny-random", verbose=False)
    assert run.status == "finished" and run.history[-1]["step"] == 2
    facts = set(qs.loc[qs["split"] == "test", "fact_id"])
    train_rows = load_instruction_data("kettlebird", split="train", verbose=False)
    expected = sum(f in facts for f in train_rows["fact_id"])  # 3 paraphrases per fact, less any kept for validation
    assert run.config.max_train_samples == expected and 4 <= expected <= 6
    assert latest_run("tiny-random") is None  # a subset run is not "the finetuned model"
    train(TrainConfig.fast(max_train_samples=None, max_steps=1, run_name="demo"), verbose=False, estimate=False)
    assert latest_run("tiny-random") is None  # a few steps are a demo, not "the finetuned model"
    full = train(TrainConfig.fast(max_train_samples=None, max_steps=-1, per_device_train_batch_size=64,
                                  eval_steps=0, run_name="full"), verbose=False, estimate=False)
    assert latest_run("tiny-random").path == full.path
    assert latest_run() is None  # nothing finetuned the bundled model here


@pytest.mark.usefixtures("forced_precision")
def test_a_brief_finetune_lowers_the_loss_on_new_wordings_of_trained_facts(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path))
    qs = question_set("kettlebird", ("test", "unseen"), limit=2)
    base = evaluate_model("tiny-random", questions=qs, max_new_tokens=2)
    run = quick_finetune(qs, model="tiny-random", max_steps=50, learning_rate=1e-2, verbose=False)
    tuned = evaluate_model(run, questions=qs, max_new_tokens=2)
    drop = base.summary["loss"] - tuned.summary["loss"]
    assert drop["test"] > 0.8  # the trained facts' answers, asked in words never trained on
    assert drop["test"] > drop["unseen"] + 0.5  # much more than on facts never trained
