"""load_instruction_data: every layout and source to one canonical shape, splits, and one clear error per bad input."""
import json

import pandas as pd
import pytest

import llmcourse.data.loading as data
from llmcourse import CourseError, load_instruction_data, split_dataset
from llmcourse.data.layouts import detect_layout, parse_fields

FIX = __import__("pathlib").Path(__file__).parent / "fixtures"


def load(source, **kw):
    """Read without holding out validation rows (validation=0), so every row of these small files stays in train."""
    return load_instruction_data(source, verbose=False, **{"validation": 0, **kw})


def test_lamini_docs_layout_reads_without_options():
    dd = load(FIX / "lamini_docs.jsonl")
    assert dd.layout == "question/answer"
    assert list(dd) == ["train"]
    assert dd["train"][0] == {"prompt": "What is Lamini?", "completion": "Lamini is an LLM engine for developers."}


def test_alpaca_json_array_joins_instruction_and_input():
    ds = load(FIX / "alpaca.json", split="train")
    assert ds["prompt"] == ["Translate to French.\n\nGood morning", "Name a primary colour.", "Add the numbers.\n\n2 and 3"]
    assert ds["completion"] == ["Bonjour", "Red", "5"]


def test_sharegpt_turns_become_role_content_messages():
    dd = load(FIX / "sharegpt.jsonl")
    assert dd.layout == "conversations"
    assert dd["train"][1]["messages"] == [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Colour of sky?"},
                                          {"role": "assistant", "content": "Blue."}]


def test_openai_messages_layout():
    dd = load(FIX / "openai_messages.jsonl")
    assert dd.layout == "messages" and dd["train"][0]["messages"][1] == {"role": "assistant", "content": "4"}


def test_csv_keeps_quoted_commas():
    ds = load(FIX / "qa.csv", split="train")
    assert ds["completion"][0] == "A pot for boiling water, usually electric."


def test_parquet_list_and_dataframe(tmp_path):
    rows = [{"input": "2+2", "output": "4"}, {"input": "3+3", "output": "6"}]
    pd.DataFrame(rows).to_parquet(tmp_path / "x.parquet")
    for source in (tmp_path / "x.parquet", rows, pd.DataFrame(rows)):
        dd = load(source)
        assert dd.layout == "input/output" and dd["train"]["completion"] == ["4", "6"]


def test_plain_text_layout():
    dd = load(FIX / "text.jsonl")
    assert dd.layout == "text" and dd["train"].column_names == ["text"]


def test_folder_gives_one_split_per_file(tmp_path):
    for name, q in (("train", "a"), ("test", "b")):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({"question": q, "answer": q.upper()}) + "\n")
    dd = load(tmp_path)
    assert list(dd) == ["train", "test"] and dd["test"]["completion"] == ["B"]


def test_fields_override_for_unknown_columns():
    dd = load(FIX / "unknown_layout.jsonl", fields={"prompt": "q", "completion": "a"})
    assert dd["train"]["prompt"] == ["What?", "Who?"] and dd.layout.startswith("custom")
    assert parse_fields("prompt=q,completion=a") == {"prompt": "q", "completion": "a"}


def test_layout_detection_is_case_insensitive():
    assert detect_layout(["Question", "Answer"]).fields == {"prompt": "Question", "completion": "Answer"}


def test_split_column_and_validation_from_shipped_set(monkeypatch):
    monkeypatch.setattr(data, "shipped_dir", lambda: FIX / "kettlebird_mini")
    dd = load("kettlebird", validation=0.1)
    assert list(dd) == ["train", "validation", "test", "unseen"]
    assert set(dd["train"].column_names) == {"prompt", "completion", "id", "fact_id", "source"}
    assert len(dd["train"]) + len(dd["validation"]) == 9 and len(dd["validation"]) == 1
    val_fact = dd["validation"]["fact_id"][0]
    assert dd["train"]["fact_id"].count(val_fact) == 2  # the fact keeps training rows
    assert load("kettlebird", split="validation", validation=0.1, seed=7)["id"] == dd["validation"]["id"]  # fixed
    assert len(load("kettlebird", split="test")) == 3


def test_real_shipped_set_validation_is_stratified():
    dd = load_instruction_data("kettlebird", verbose=False)
    train_facts = set(dd["train"]["fact_id"])
    assert set(dd["validation"]["fact_id"]) <= train_facts
    assert len(dd["validation"]) == round(0.1 * (len(dd["train"]) + len(dd["validation"])))
    assert not set(dd["validation"]["id"]) & set(dd["train"]["id"])


def test_docs_as_text(monkeypatch):
    monkeypatch.setattr(data, "shipped_dir", lambda: FIX / "kettlebird_mini")
    ds = load("kettlebird-docs", split="train")
    assert ds["id"] == ["mini", "second"] and ds["text"][1] == "# Second\n\nDescale every month."


def test_split_dataset_is_seeded_and_keeps_groups_together():
    rows = [{"prompt": f"q{i}", "completion": "a", "fact_id": f"f{i // 2}"} for i in range(20)]
    dd = split_dataset(load(rows)["train"], validation=0.2, test=0.2, seed=0, group_by="fact_id")
    assert [len(dd[s]) for s in ("train", "validation", "test")] == [12, 4, 4]
    for s in ("validation", "test"):
        assert not set(dd[s]["fact_id"]) & set(dd["train"]["fact_id"])
    again = split_dataset(load(rows)["train"], validation=0.2, test=0.2, seed=0, group_by="fact_id")
    assert again["test"]["prompt"] == dd["test"]["prompt"]
    assert split_dataset(load(rows)["train"], seed=1)["test"]["prompt"] != dd["test"]["prompt"]


def test_unknown_split_names_the_available_ones():
    with pytest.raises(CourseError, match=r"No split 'dev'.*\['train'\]"):
        load(FIX / "lamini_docs.jsonl", split="dev")


# ---- one clear message per bad input ----

def test_broken_json_line_names_file_and_line():
    with pytest.raises(CourseError, match=r"broken\.jsonl, line 3: not valid JSON.*skip_bad_rows"):
        load(FIX / "broken.jsonl")


def test_skip_bad_rows_counts_them():
    dd = load(FIX / "broken.jsonl", skip_bad_rows=True)
    assert len(dd["train"]) == 3 and dd.skipped == ["broken.jsonl, line 3: not valid JSON (Expecting value at column 39)"]


@pytest.mark.parametrize("name, message", [
    ("missing_field.jsonl", r"missing_field\.jsonl, line 2: field 'answer' is missing"),
    ("empty_field.jsonl", r"empty_field\.jsonl, line 2: field 'answer' is empty"),
    ("non_string.jsonl", r"non_string\.jsonl, line 2: field 'answer' is a int \(42\), not text"),
    ("empty.jsonl", r"empty\.jsonl is empty"),
    ("latin1.jsonl", r"latin1\.jsonl, line 1: byte 0xe9 is not valid utf-8.*encoding='latin-1'"),
    ("unknown_layout.jsonl", r"Unknown layout: the columns are \['a', 'q'\].*fields="),
])
def test_each_bad_input_gets_one_clear_message(name, message):
    with pytest.raises(CourseError, match=message):
        load(FIX / name)


def test_latin1_reads_with_the_encoding_option():
    assert load(FIX / "latin1.jsonl", encoding="latin-1")["train"]["prompt"] == ["Qu'est-ce qu'un café?"]


def test_missing_rows_can_be_skipped():
    dd = load(FIX / "missing_field.jsonl", skip_bad_rows=True)
    assert len(dd["train"]) == 1 and "line 2" in dd.skipped[0]


def test_bad_sources(tmp_path):
    with pytest.raises(CourseError, match="nope.jsonl: no such file or folder"):
        load(str(tmp_path / "nope.jsonl"))
    with pytest.raises(CourseError, match="'kettlebrid' is not a file, a folder"):
        load("kettlebrid")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(CourseError, match="unknown file type"):
        load(tmp_path / "x.txt")
    (tmp_path / "arr.json").write_text("[1, 2]")
    with pytest.raises(CourseError, match=r"arr.json, item 1: a JSON int, not an object"):
        load(tmp_path / "arr.json")
    with pytest.raises(CourseError, match="empty"):
        load([])


def test_conversation_without_assistant_turn(tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(CourseError, match="line 1: the conversation has no assistant turn"):
        load(tmp_path / "c.jsonl")


# ---- issue 16: files that used to crash or mislead ----

def test_csv_field_over_the_csv_modules_limit_reads(tmp_path):
    (tmp_path / "big.csv").write_text('question,answer\nq,"' + "x" * 200_000 + '"\n')
    assert len(load(tmp_path / "big.csv")["train"]["completion"][0]) == 200_000


def test_semicolon_and_tab_csv_are_read_by_their_header(tmp_path):
    (tmp_path / "semi.csv").write_text("question;answer\nWhat, then?;That.\n")
    (tmp_path / "tab.csv").write_text("question\tanswer\nWho?\tThem.\n")
    assert load(tmp_path / "semi.csv")["train"][0] == {"prompt": "What, then?", "completion": "That."}
    assert load(tmp_path / "tab.csv")["train"][0] == {"prompt": "Who?", "completion": "Them."}


def test_utf16_is_named_and_reads_with_its_encoding(tmp_path):
    (tmp_path / "u.jsonl").write_bytes('{"question": "Café?", "answer": "Oui."}\n'.encode("utf-16"))
    with pytest.raises(CourseError, match=r"u\.jsonl is not UTF-8: it starts with a UTF-16 byte order mark.*"
                                          r"--encoding utf-16"):
        load(tmp_path / "u.jsonl")
    assert load(tmp_path / "u.jsonl", encoding="utf-16")["train"]["prompt"] == ["Café?"]
    (tmp_path / "nobom.jsonl").write_bytes('{"question": "a", "answer": "b"}\n'.encode("utf-16-le"))
    with pytest.raises(CourseError, match="it holds NUL bytes, so it is probably UTF-16"):
        load(tmp_path / "nobom.jsonl")


def test_unknown_encoding_is_one_line():
    with pytest.raises(CourseError, match=r"encoding 'klingon' is not one Python knows \(reading .*qa\.csv\)"):
        load(FIX / "qa.csv", encoding="klingon")


def test_deep_json_and_duplicate_keys_name_file_and_line(tmp_path):
    good = '{"question": "a", "answer": "b"}\n'
    (tmp_path / "deep.jsonl").write_text(good + '{"question": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "dup.jsonl").write_text(good + '{"question": "c", "answer": "d", "answer": "e"}\n')
    (tmp_path / "dup.json").write_text('[{"question": "c", "answer": "d"}, {"question": "c", "question": "e"}]')
    (tmp_path / "dup_turn.jsonl").write_text('{"messages": [{"role": "user", "content": "a", "content": "b"}]}\n')
    with pytest.raises(CourseError, match=r"deep\.jsonl, line 2: JSON nested deeper than Python can read"):
        load(tmp_path / "deep.jsonl")
    with pytest.raises(CourseError, match=r"deep\.json: JSON nested deeper than Python can read"):
        load(tmp_path / "deep.json")
    with pytest.raises(CourseError, match=r"dup\.jsonl, line 2: key 'answer' appears twice in one object"):
        load(tmp_path / "dup.jsonl")
    with pytest.raises(CourseError, match=r"dup\.json, item 2: key 'question' appears twice"):
        load(tmp_path / "dup.json")
    with pytest.raises(CourseError, match=r"dup_turn\.jsonl, line 1: key 'content' appears twice"):
        load(tmp_path / "dup_turn.jsonl")
    assert load(tmp_path / "dup.jsonl", skip_bad_rows=True).skipped == [
        "dup.jsonl, line 2: key 'answer' appears twice in one object (JSON keeps only the last); keep one"]


def test_json_message_has_no_doubled_at(tmp_path):
    (tmp_path / "u.jsonl").write_text('{"question": "a", "answer": "b\n')
    with pytest.raises(CourseError, match=r"line 1: not valid JSON \(Unterminated string starting at column 29\)"):
        load(tmp_path / "u.jsonl")


def test_null_field_is_not_called_missing(tmp_path):
    (tmp_path / "n.jsonl").write_text('{"question": "a", "answer": null}\n{"question": "b"}\n{"question": "c", '
                                      '"answer": "d"}\n')
    assert load(tmp_path / "n.jsonl", skip_bad_rows=True).skipped == [
        "n.jsonl, line 1: field 'answer' is null (no value)", "n.jsonl, line 2: field 'answer' is missing"]


def test_mixed_layouts_blame_the_row_that_differs_from_the_rest(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"question": "a", "answer": "b"}\n{"prompt": "c", "completion": "d"}\n'
                                      '{"prompt": "e", "completion": "f"}\n')
    with pytest.raises(CourseError, match=r"m\.jsonl, line 1: field 'prompt' is missing: this row has the columns of "
                                          r"layout question/answer, not prompt/completion like the rest"):
        load(tmp_path / "m.jsonl")
    (tmp_path / "tie.jsonl").write_text('{"question": "a", "answer": "b"}\n{"prompt": "c", "completion": "d"}\n')
    with pytest.raises(CourseError, match=r"tie\.jsonl, line 2"):  # a tie: the first row's layout is the file's
        load(tmp_path / "tie.jsonl")


def test_bad_rows_are_listed_in_file_order(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"question": "a"}\nnot json\n{"question": "c", "answer": "d"}\n')
    assert [s.split(":")[0] for s in load(tmp_path / "b.jsonl", skip_bad_rows=True).skipped] == [
        "b.jsonl, line 1", "b.jsonl, line 2"]
