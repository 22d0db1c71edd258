"""Docs -> Q/A: sections, the template route, and LLM drafting through any backend with complete()."""
import pytest

from llmcourse import CourseError, load_instruction_data
from llmcourse.models.drafting import clean_question, draft_problems, draft_qa_pairs, qa_from_headings, split_sections

PAGE = """# Descaling how-to

> Fictional company.

Limescale slows boiling.

## The reminder

The display shows D1 after 140 boils.

## Alternatives

Use citric acid.
"""


class EchoBackend:
    """A stand-in LLM: records prompts and answers from a script."""
    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def complete(self, prompts):
        self.prompts += prompts
        out, self.replies = self.replies[:len(prompts)], self.replies[len(prompts):]
        return out


def test_split_sections():
    secs = split_sections(PAGE)
    assert [(s.title, s.heading, s.text) for s in secs] == [
        ("Descaling how-to", None, "Limescale slows boiling."),
        ("Descaling how-to", "The reminder", "The display shows D1 after 140 boils."),
        ("Descaling how-to", "Alternatives", "Use citric acid.")]


def test_template_route_gives_loadable_pairs():
    pairs = qa_from_headings(PAGE, source="descaling.md")
    assert pairs[1]["question"] == "What does the Descaling how-to page say about the reminder?"
    assert pairs[1]["answer"] == "The display shows D1 after 140 boils."
    assert load_instruction_data(pairs, validation=0, verbose=False)["train"]["completion"][2] == "Use citric acid."


def test_drafting_asks_for_a_question_then_an_answer():
    backend = EchoBackend(["1. How does limescale affect boiling?\nmore text", "What does the text say about boils?",
                           "It slows boiling.", "The text is about boils."])
    drafts = draft_qa_pairs(PAGE, backend, max_sections=2, source="descaling.md")
    assert backend.prompts[0].startswith("Limescale slows boiling.\n\nWrite one question")
    assert backend.prompts[2].endswith("answer in one sentence: How does limescale affect boiling?")
    assert [(d["question"], d["answer"], d["ok"]) for d in drafts] == [
        ("How does limescale affect boiling?", "It slows boiling.", True),
        ("What does the text say about boils?", "The text is about boils.", False)]
    assert drafts[1]["problems"] == "asks about the text, not the product; answer repeats the question"


def test_draft_problems():
    text = "The display shows D1 after 140 boils."
    assert draft_problems("When does the display show D1?", "After 140 boils.", text) == []
    assert draft_problems("Is it blue", "", text) == ["not a question", "shares no word with the section",
                                                      "empty answer"]
    assert draft_problems("What a great display! Any questions?", "The display shows D1.", text) == [
        "not one short question"]


def test_clean_question():
    assert clean_question('Question: "Is it safe?"\nblah') == "Is it safe?"
    assert clean_question("") == ""


def test_drafting_errors():
    with pytest.raises(CourseError, match="no complete"):
        draft_qa_pairs(PAGE, backend=object())
    with pytest.raises(CourseError, match="needs {text}"):
        draft_qa_pairs(PAGE, EchoBackend([]), question_prompt="no placeholder")
    with pytest.raises(CourseError, match="no text"):
        draft_qa_pairs("# Title only\n", EchoBackend([]))


@pytest.mark.slow
def test_bundled_model_drafts_something():
    drafts = draft_qa_pairs(PAGE, max_sections=1)
    assert len(drafts) == 1 and drafts[0]["raw_question"]
