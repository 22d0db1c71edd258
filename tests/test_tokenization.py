"""Tokenization: exact label tensors, EOS, truncation that protects the answer, text blocks, the token table."""
import datasets
import pytest

from llmcourse import CourseError, format_example, load_model, tokenize_dataset
from llmcourse.data.templates import (SYSTEM_PROMPT, default_system_prompt, render_messages, system_prompt_of,
                                      with_system_prompt)
from llmcourse.notebook.token_table import show_tokens
from llmcourse.data.tokenization import IGNORE as X
from llmcourse.data.tokenization import tokenize_example


class CharTokenizer:
    """One token per character (id = code point) and "$" as end token: every label is computable by hand."""
    eos_token = "$"
    chat_template = None

    def __call__(self, text, add_special_tokens=False):
        enc = lambda t: [ord(c) for c in t]  # noqa: E731
        return {"input_ids": [enc(t) for t in text] if isinstance(text, list) else enc(text)}

    def decode(self, ids):
        return "".join(map(chr, ids))


CHAR = CharTokenizer()
a, b, c, x, y, COLON, EOS = map(ord, "abcxy:$")


@pytest.fixture(scope="module")
def tok():
    return load_model("tiny-random")[1]


def test_answer_only_labels_exact():
    r = tokenize_example("ab", "xy", CHAR, template="{prompt}:")
    assert r["input_ids"] == [a, b, COLON, x, y, EOS]
    assert r["labels"] == [X, X, X, x, y, EOS]
    assert r["attention_mask"] == [1] * 6 and not r["truncated"]


def test_train_on_everything_switch():
    r = tokenize_example("ab", "xy", CHAR, template="{prompt}:", answer_only=False)
    assert r["labels"] == [a, b, COLON, x, y, EOS]


def test_left_truncation_cuts_the_prompt_and_keeps_answer_and_eos():
    r = tokenize_example("abcabc", "xy", CHAR, template="{prompt}:", max_length=5)
    assert r["input_ids"] == [c, COLON, x, y, EOS] and r["labels"] == [X, X, x, y, EOS]
    assert r["truncated"] and not r["answer_cut"]


def test_right_truncation_cuts_the_answer_and_says_so():
    r = tokenize_example("abcabc", "xy", CHAR, template="{prompt}:", max_length=5, truncation="right")
    assert r["input_ids"] == [a, b, c, a, b] and r["labels"] == [X] * 5
    assert r["answer_cut"]


def test_answer_longer_than_budget_keeps_one_prompt_token():
    r = tokenize_example("ab", "xyxy", CHAR, template="{prompt}:", max_length=3)
    assert r["input_ids"] == [COLON, x, y] and r["labels"] == [X, x, y] and r["answer_cut"]


def test_dataset_reports_truncation_and_can_drop(capsys):
    ds = datasets.Dataset.from_list([{"prompt": "ab", "completion": "x"}, {"prompt": "abcabcabc", "completion": "xyxyxy"}])
    out = tokenize_dataset(ds, CHAR, template="{prompt}:", max_length=6)
    assert "2 rows (max_length 6): 1 truncated (prompt cut from the left), 1 with the answer cut" in capsys.readouterr().out
    rep = out.tokenization_report
    assert (rep.truncated, rep.answer_cut, rep.lengths) == (1, 1, [5, 17])
    dropped = tokenize_dataset(ds, CHAR, template="{prompt}:", max_length=6, truncation="drop", verbose=False)
    assert len(dropped) == 1 and dropped.tokenization_report.dropped == 1
    assert dropped[0]["labels"] == [X, X, X, x, EOS]


def test_multi_turn_trains_every_assistant_turn():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "x"},
            {"role": "user", "content": "b"}, {"role": "assistant", "content": "y"}]
    ds = datasets.Dataset.from_list([{"messages": msgs}])
    row = tokenize_dataset(ds, CHAR, template="{prompt}:", verbose=False)[0]
    assert row["input_ids"] == [a, COLON, x, EOS, 10, b, COLON, y, EOS, 10]
    assert row["labels"] == [X, X, x, EOS, 10, X, X, y, EOS, 10]


def test_chat_template_pieces_join_to_the_template_text(tok):
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}]
    pieces = render_messages(msgs, tok)
    assert "".join(t for t, _ in pieces) == tok.apply_chat_template(msgs, tokenize=False)
    assert [t for t, trained in pieces if trained] == ["Hello<|im_end|>\n", "Ciao<|im_end|>\n"]


def test_chat_labels_are_the_answer_and_end_token(tok):
    r = tokenize_example("Where is Kettlebird based?", "In Aarhus.", tok)
    trained = [i for i, lab in zip(r["input_ids"], r["labels"]) if lab != X]
    assert tok.decode(trained) == "In Aarhus.<|im_end|>\n"
    assert tok.decode(r["input_ids"]).endswith("<|im_start|>assistant\nIn Aarhus.<|im_end|>\n")
    assert r["labels"][: len(r["labels"]) - len(trained)] == [X] * (len(r["labels"]) - len(trained))


def test_the_bots_system_prompt_replaces_the_models_default_and_labels_stay_on_the_answer(tok):
    bot = with_system_prompt(tok, SYSTEM_PROMPT)
    assert tok.chat_template != bot.chat_template and system_prompt_of(tok) is None  # the original is untouched
    assert format_example({"prompt": "Why?", "completion": "Because."}, bot) == (
        "<|im_start|>system\nYou are Kettlebird's customer support assistant.<|im_end|>\n"
        "<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\nBecause.<|im_end|>\n")
    assert format_example({"prompt": "Why?", "completion": "Because.", "system": "Be brief."}, bot) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
        "<|im_start|>assistant\nBecause.<|im_end|>\n")  # a row's own system turn keeps it
    r = tokenize_example("Why?", "Because.", bot)
    assert tok.decode([i for i, lab in zip(r["input_ids"], r["labels"]) if lab != X]) == "Because.<|im_end|>\n"
    n = len(tok("Because.<|im_end|>\n", add_special_tokens=False)["input_ids"])
    assert r["labels"][:-n] == [X] * (len(r["labels"]) - n) and X not in r["labels"][-n:]  # only the answer trains
    again = with_system_prompt(bot, 'Say "hi".\nThen stop.')  # replaces, never stacks
    assert system_prompt_of(again) == 'Say "hi".\nThen stop.' == default_system_prompt(again)
    assert default_system_prompt(again, original=True) == default_system_prompt(tok) == (
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face")


@pytest.mark.parametrize("template, text", [
    ("qa", "### Question:\nWhy?\n\n### Answer:\nBecause.<|im_end|>"),
    ("alpaca", "Below is an instruction that describes a task. Write a response that appropriately completes the "
               "request.\n\n### Instruction:\nWhy?\n\n### Response:\nBecause.<|im_end|>"),
    ("Q: {prompt} A: ", "Q: Why? A: Because.<|im_end|>"),
])
def test_format_example_shows_exact_text(tok, template, text):
    assert format_example({"prompt": "Why?", "completion": "Because."}, tok, template) == text


def test_bad_template_and_missing_fields(tok):
    with pytest.raises(CourseError, match="neither 'chat'"):
        format_example({"prompt": "a", "completion": "b"}, tok, "no placeholder")
    with pytest.raises(CourseError, match="needs prompt and completion"):
        format_example({"question": "a"}, tok)
    with pytest.raises(CourseError, match="truncation="):
        tokenize_dataset(datasets.Dataset.from_list([{"prompt": "a", "completion": "b"}]), tok, truncation="middle")


def test_text_dataset_becomes_blocks_with_labels_equal_inputs():
    ds = datasets.Dataset.from_list([{"text": "abc"}, {"text": "xy"}])
    out = tokenize_dataset(ds, CHAR, max_length=4, verbose=False)
    assert out["input_ids"] == [[a, b, c, EOS], [x, y, EOS]]
    assert out["labels"] == out["input_ids"]


def test_token_table_text_and_html(tok):
    table = show_tokens({"prompt": "Hi", "completion": "Yo"}, tok, template="qa")
    text = str(table)
    assert "masked" in text and "trained" in text and table.trained == 3  # "Yo" is 2 tokens + end token
    assert "<table" in table._repr_html_() and "3 of" in table._repr_html_()
    assert show_tokens({"prompt": "Hi", "completion": "Yo"}, tok, template="qa", max_tokens=4).hidden > 0


def test_length_plot_marks_the_budget():
    import matplotlib
    matplotlib.use("Agg")
    from llmcourse.plots.lengths import plot_token_lengths

    ds = datasets.Dataset.from_list([{"prompt": "ab", "completion": "x"}, {"prompt": "abcabc", "completion": "xy"}])
    out = tokenize_dataset(ds, CHAR, template="{prompt}:", max_length=6, verbose=False)
    ax = plot_token_lengths(out).axes[0]
    assert ax.get_legend().get_texts()[0].get_text() == "max_length 6: 1 rows over"
    assert ax.get_title() == "2 examples: median 7.5 tokens, max 10"


def test_max_length_below_one_is_refused(tok):
    ds = datasets.Dataset.from_list([{"prompt": "a", "completion": "b"}])
    with pytest.raises(CourseError, match="max_length=0: an example needs at least 1 token"):
        tokenize_dataset(ds, tok, max_length=0, verbose=False)
