"""The TF-IDF retriever, the page splitter and the retrieval-augmented prompt, on hand-made pages."""
import pytest

from llmcourse.core.errors import CourseError
from llmcourse.models.retrieval import Passage, RetrievalLLM, Retriever, load_passages, rag_messages, rag_prompt, split_page

PAGE = """# Warranty policy

> Fictional company, invented for the llmcourse finetuning course.

What the warranty covers.

## Periods

| Product | Warranty |
|---|---|
| K2 | 27 months |

## Claims

File a claim at care.example/claim with the serial number.
"""


def test_split_page_gives_one_passage_per_section_without_the_disclaimer():
    assert split_page(PAGE, "warranty.md") == [
        Passage("warranty.md", "Warranty policy", "What the warranty covers."),
        Passage("warranty.md", "Warranty policy — Periods", "| Product | Warranty |\n|---|---|\n| K2 | 27 months |"),
        Passage("warranty.md", "Warranty policy — Claims", "File a claim at care.example/claim with the serial number."),
    ]


def test_search_ranks_the_matching_passage_first():
    passages = split_page(PAGE, "warranty.md") + [
        Passage("descaling.md", "Descaling", "Descale the kettle every 300 boils with citric acid."),
        Passage("shipping.md", "Shipping", "Parcels ship from Kolding within two days."),
    ]
    r = Retriever(passages)
    (best, score), (second, _) = r.search("How often should I descale my kettle?", k=2)
    assert best.source == "descaling.md" and 0 < score <= 1
    assert r.hit("How often should I descale my kettle?", "descaling.md", k=1)
    assert not r.hit("How often should I descale my kettle?", "shipping.md", k=1)
    assert r.search("Where do parcels ship from?", k=1)[0][0].source == "shipping.md"


def test_a_question_in_other_words_can_miss():
    # No word in common with the right passage: word-overlap retrieval cannot find it.
    passages = [Passage("descaling.md", "Descaling", "Descale the kettle every 300 boils with citric acid."),
                Passage("cleaning.md", "Cleaning", "Wipe the kettle with a soft cloth; never use acid on the lid.")]
    r = Retriever(passages)
    assert not r.hit("How do I get rid of chalky build-up?", "descaling.md", k=1)


def test_rag_prompt_puts_context_before_the_question():
    p = [Passage("w.md", "Warranty — Periods", "| Product | Warranty |\n|---|---|\n| K2 | 27 months |")]
    assert rag_messages("How long?", p, instruction="Use this context:") == [
        {"role": "system", "content": "Use this context:\n\n[Warranty — Periods]\nProduct: Warranty\nK2: 27 months"},
        {"role": "user", "content": "How long?"}]
    assert rag_prompt("How long?", p, instruction="Use this context:") == (
        "Use this context:\n\n[Warranty — Periods]\nProduct: Warranty\nK2: 27 months\n\nQuestion: How long?\nAnswer:")


def test_retrieval_llm_wraps_any_llm():
    class Echo:
        name = "echo"

        def complete(self, prompts):
            return prompts

    r = Retriever([Passage("a.md", "A", "Kettles boil water."), Passage("b.md", "B", "Hubs connect to Wi-Fi.")])
    rag = RetrievalLLM(Echo(), r, k=1)
    ((system, user),) = rag.complete(["What connects to Wi-Fi?"])
    assert rag.name == "echo + retrieval"
    assert "Hubs connect to Wi-Fi." in system["content"] and "Kettles" not in system["content"]
    assert user == {"role": "user", "content": "What connects to Wi-Fi?"}
    assert rag.last_passages == [[r.passages[1]]]


def test_shipped_docs_load_and_empty_folders_are_explained(tmp_path):
    passages = load_passages()
    assert len({p.source for p in passages}) >= 20 and all(p.text for p in passages)
    with pytest.raises(CourseError, match="holds no .md or .txt pages"):
        load_passages(tmp_path)
