"""Turning raw pages into question/answer pairs: by a fixed template, or drafted by an LLM.

Two routes, as the course describes: a prompt template (deterministic, one pair per section,
questions that sound mechanical) or another LLM that reads each section and drafts a question and
an answer. The bundled 135M model is a weak drafter: expect repeated or off-topic questions and
answers that copy the text; people use a much bigger model (e.g. hosted Lamini via llmcourse.models.backends)
and still review every pair by hand.
"""
from __future__ import annotations

import re

from llmcourse.core.errors import CourseError
from llmcourse.core.fastmode import capped
from llmcourse.data.pages import split_sections
from llmcourse.models.backends import LocalLLM

QUESTION_PROMPT = ("{text}\n\nWrite one question a customer could ask about the text above. "
                   "Reply with the question only.")
ANSWER_PROMPT = "{text}\n\nUsing only the text above, answer in one sentence: {question}"
TEMPLATE_QUESTION = "What does the {title} page say about {heading}?"


def qa_from_headings(markdown: str, *, source: str | None = None, question: str = TEMPLATE_QUESTION) -> list[dict]:
    """One pair per section by a fixed template: question from the title and heading, the section as answer."""
    return [{"question": question.format(title=s.title, heading=(s.heading or 'overview').lower()), "answer": s.text,
             "source": source or "", "section": s.heading or "overview"} for s in split_sections(markdown)]


def clean_question(reply: str) -> str:
    """The first line of a reply, without list numbering or quotes: the drafted question."""
    line = reply.strip().splitlines()[0] if reply.strip() else ""
    return re.sub(r"^(\d+[.)]|[-*]|question:)\s*", "", line.strip(), flags=re.I).strip(' "')


_META = re.compile(r"\b(the|this) (text|sentence|section|passage|paragraph|article)\b|customer'?s question", re.I)


_STOP = set("a an and are can could did do does for from how i in is it its my of on or the this to was what "
            "when where which who why will with you your".split())


def _words(text: str) -> set:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1 and w not in _STOP}


def draft_problems(question: str, answer: str, text: str) -> list[str]:
    """Simple reasons to distrust a drafted pair (empty list = no problem found; facts still need a human)."""
    problems = []
    if not question.endswith("?"):
        problems.append("not a question")
    if re.search(r"[.!?]\s+\S", question) or len(question.split()) > 25:
        problems.append("not one short question")
    if _META.search(question):
        problems.append("asks about the text, not the product")
    if not _words(question) & _words(text):
        problems.append("shares no word with the section")
    q, a = _words(question), _words(answer)
    if not a:
        problems.append("empty answer")
    elif len(q & a) / len(a) >= 0.75:  # most of the answer is words of the question
        problems.append("answer repeats the question")
    return problems


def draft_qa_pairs(markdown: str, backend=None, *, question_prompt: str = QUESTION_PROMPT,
                   answer_prompt: str = ANSWER_PROMPT, source: str | None = None,
                   max_sections: int | None = None) -> list[dict]:
    """Ask an LLM to draft one question per section of a page, then to answer it from the section.

    Two short requests per section work even for small models, which rarely keep to a
    'Question: ... Answer: ...' format. backend: any object with `complete(prompts) -> list[str]`
    (llmcourse.models.backends backends, Lamini, your own); None loads the bundled model. Each draft keeps the
    raw question; `problems` lists what simple checks found (see draft_problems) and ok = no problems.
    In fast mode (the test suite) only the first section is drafted.
    """
    if "{text}" not in question_prompt or "{text}" not in answer_prompt or "{question}" not in answer_prompt:
        raise CourseError("question_prompt needs {text}; answer_prompt needs {text} and {question}.")
    sections = split_sections(markdown)[:capped(max_sections, 1)]  # fast mode (the test suite): 1 section
    if not sections:
        raise CourseError("The page has no text to draft questions from.")
    backend = backend or LocalLLM()
    if not callable(getattr(backend, "complete", None)):
        raise CourseError(f"backend {backend!r} has no complete(prompts) method.")
    q_replies = backend.complete([question_prompt.replace("{text}", s.text) for s in sections])
    questions = [clean_question(r) for r in q_replies]
    answers = [a.strip() for a in backend.complete(
        [answer_prompt.replace("{text}", s.text).replace("{question}", q) for s, q in zip(sections, questions)])]
    drafts = []
    for s, q, a, raw in zip(sections, questions, answers, q_replies):
        problems = draft_problems(q, a, s.text)
        drafts.append({"question": q, "answer": a, "source": source or "", "section": s.heading or "overview",
                       "ok": not problems, "problems": "; ".join(problems), "raw_question": raw})
    return drafts
