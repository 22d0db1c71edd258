"""Retrieval baseline: find the passages of the knowledge base that match a question, put them in the prompt.

This is "connect data through retrieval" (RAG) in its simplest honest form: TF-IDF word overlap
(scikit-learn's TfidfVectorizer) over the sections of the shipped docs pages. It needs no training,
but it can only answer from what it finds, and word overlap sometimes finds the wrong page.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from llmcourse.core.errors import CourseError
from llmcourse.data.loading import shipped_dir
from llmcourse.data.pages import read_pages, split_sections
from llmcourse.models.backends import to_text

RAG_INSTRUCTION = "You answer questions in one short sentence, using only this context:"


@dataclass(frozen=True)
class Passage:
    """One section of one page: `source` is the page's file name, `title` its page and section heading."""
    source: str
    title: str
    text: str


def split_page(markdown: str, source: str) -> list[Passage]:
    """A markdown page -> one passage per `## ` section (the intro before the first section is one too)."""
    return [Passage(source, f"{s.title} — {s.heading}" if s.heading else s.title, s.text)
            for s in split_sections(markdown, default_title=Path(source).stem)]


def load_passages(folder=None) -> list[Passage]:
    """The sections of every .md/.txt page in `folder` (default: the shipped Kettlebird docs)."""
    folder = Path(folder) if folder is not None else shipped_dir() / "docs"
    return [psg for name, text in read_pages(folder) for psg in split_page(text, name)]


class Retriever:
    """TF-IDF search over passages: `search(question, k)` -> the k best (passage, score) pairs."""

    def __init__(self, passages: list[Passage] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.passages = list(passages) if passages is not None else load_passages()
        if not self.passages:
            raise CourseError("Retriever needs at least one passage.")
        # Unigrams + bigrams, damped term counts, English stop words out: the textbook TF-IDF setting.
        self.vectorizer = TfidfVectorizer(stop_words="english", ngram_range=(1, 2), sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform([f"{p.title}\n{p.text}" for p in self.passages])

    def search(self, question: str, k: int = 2) -> list[tuple[Passage, float]]:
        """The k passages most similar to the question (cosine of TF-IDF vectors), best first."""
        scores = (self.matrix @ self.vectorizer.transform([question]).T).toarray().ravel()
        best = scores.argsort()[::-1][:k]
        return [(self.passages[i], float(scores[i])) for i in best]

    def hit(self, question: str, source: str, k: int = 2) -> bool:
        """Whether the page that states the answer (`source`) is among the top k: False is a retrieval miss."""
        return any(p.source == source for p, _ in self.search(question, k))


def rag_messages(question: str, passages: list[Passage], instruction: str = RAG_INSTRUCTION) -> list[dict]:
    """The retrieval-augmented prompt as chat turns: the passages in the system turn, the question as the user's."""
    context = "\n\n".join(f"[{p.title}]\n{_compact(p.text)}" for p in passages)
    return [{"role": "system", "content": f"{instruction}\n\n{context}"}, {"role": "user", "content": question}]


def rag_prompt(question: str, passages: list[Passage], instruction: str = RAG_INSTRUCTION) -> str:
    """The same prompt as one text (what a text-only backend receives): context, then the question."""
    return to_text(rag_messages(question, passages, instruction))


def _compact(text: str) -> str:
    """Markdown tables and lists as plain lines: fewer tokens for a small model to read."""
    text = re.sub(r"^\|[-| ]+\|$\n?", "", text, flags=re.M)  # table separator rows
    return re.sub(r"^\| *| *\|$", "", text, flags=re.M).replace(" | ", ": ")


class RetrievalLLM:
    """Any LLM with retrieval in front: each prompt is a question, answered from the top-k passages."""

    def __init__(self, llm, retriever: Retriever | None = None, k: int = 2):
        self.llm, self.retriever, self.k = llm, retriever or Retriever(), k
        self.name = f"{llm.name} + retrieval"
        self.last_passages: list[list[Passage]] = []

    def complete(self, prompts: list[str]) -> list[str]:
        """Retrieve for each question, build the context prompt, and let the wrapped LLM answer."""
        self.last_passages = [[p for p, _ in self.retriever.search(q, self.k)] for q in prompts]
        return self.llm.complete([rag_messages(q, ps) for q, ps in zip(prompts, self.last_passages)])
