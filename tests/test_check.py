"""check: exercise feedback catches each classic mistake with its own message."""
import pytest

from llmcourse import check, load_model
from llmcourse.evaluation.metrics import exact_match


@pytest.fixture(scope="module")
def tok():
    return load_model("tiny-random")[1]


def _example(tok, answer="27 months."):
    p = tok("### Question:\nWarranty?\n\n### Answer:\n")["input_ids"]
    a = tok(answer + tok.eos_token)["input_ids"]
    return p, a


def test_correct_labels_pass(tok, capsys):
    p, a = _example(tok)
    assert check.labels(p + a, [-100] * len(p) + a, tok, "27 months.")
    assert capsys.readouterr().out.startswith("✔ prompt masked")


@pytest.mark.parametrize("mistake, message", [
    ("all_masked", "masks the answer too"),
    ("none_masked", "prompt is not masked"),
    ("no_eos", "never learns to stop"),
    ("short", "line up"),
    ("late_mask", "does not contain the whole answer"),
])
def test_each_label_mistake_gets_its_hint(tok, capsys, mistake, message):
    p, a = _example(tok)
    ids, labels = p + a, [-100] * len(p) + a
    if mistake == "all_masked":
        labels = [-100] * len(ids)
    elif mistake == "none_masked":
        labels = list(ids)
    elif mistake == "no_eos":
        ids, labels = ids[:-1], labels[:-1]
    elif mistake == "short":
        labels = labels[:-1]
    elif mistake == "late_mask":
        labels = [-100] * (len(p) + 2) + a[2:]
    assert not check.labels(ids, labels, tok, "27 months.")
    assert message in capsys.readouterr().out


def test_exact_match_check_accepts_the_library_and_rejects_the_classic_bugs(capsys):
    assert check.exact_match_fn(exact_match)
    assert not check.exact_match_fn(lambda pred, ref: float(pred == ref))              # raw equality
    assert "normalise" in capsys.readouterr().out
    assert not check.exact_match_fn(lambda pred, ref: float(pred == pred))             # wrong variable
    assert "wrong variable" in capsys.readouterr().out


def test_learning_rate_ranges(capsys):
    assert check.learning_rate(5e-5)
    assert not check.learning_rate(1e-2)
    assert not check.learning_rate(1e-7)
    assert check.learning_rate(1e-3, lora=True)
    assert not check.learning_rate(5e-5 / 100, lora=True)
