"""Checking an export: the GGUF file read back as another program would, asked the same questions as the model
in the course, greedy answers compared word for word and scored for key facts, with the file sizes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llmcourse.core.errors import CourseError
from llmcourse.evaluation.metrics import contains_key_fact
from llmcourse.models.generation import generate
from llmcourse.models.gguf_file import load_gguf
from llmcourse.models.modelfile import ollama_name
from llmcourse.training.export import merge_lora


@dataclass
class ExportCheck:
    """What `verify_export` found: `table` has a row per question (both answers, identical, key facts)."""
    path: Path
    table: pd.DataFrame
    gguf_bytes: int
    model_bytes: int

    @property
    def identical(self) -> int:
        return int(self.table["identical"].sum())

    @property
    def key_fact(self) -> tuple[float | None, float | None]:
        """Mean key-fact score (course, GGUF); None without reference answers."""
        if "key_fact_course" not in self.table:
            return None, None
        return float(self.table["key_fact_course"].mean()), float(self.table["key_fact_gguf"].mean())

    @property
    def modelfile(self) -> Path | None:
        found = self.path.parent / "Modelfile"
        return found if found.is_file() else None

    def lines(self) -> list[str]:
        """The check as a few lines: identical answers, key facts, sizes, the Modelfile."""
        n, (course, exported) = len(self.table), self.key_fact
        out = [f"{self.path}: {self.gguf_bytes / 1e6:.1f} MB (the model in the course: "
               f"{self.model_bytes / 1e6:.1f} MB in memory)",
               f"identical answers: {self.identical} of {n} greedy answers are the same word for word"]
        if course is not None:
            out.append(f"key fact: {course:.2f} in the course, {exported:.2f} from the GGUF file ({n} questions)")
        if self.modelfile:
            out.append(f"Modelfile: {self.modelfile} (ollama create {ollama_name(self.path.name)} -f Modelfile)")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__


def _questions(questions) -> pd.DataFrame:
    if isinstance(questions, str):
        questions = [questions]
    table = questions.reset_index(drop=True) if isinstance(questions, pd.DataFrame) else \
        pd.DataFrame({"question": list(questions)})
    if "question" not in table or table.empty:
        raise CourseError("verify_export needs questions: a list of strings, or question_set(...) (a table with a "
                          "question column and, for key facts, a reference column).")
    return table


def _course_model(run_or_model, tokenizer):
    import torch

    if isinstance(run_or_model, torch.nn.Module):
        if tokenizer is None:
            raise CourseError("verify_export(path, model, questions, tokenizer=...) needs the model's tokenizer.")
        return run_or_model, tokenizer
    return merge_lora(run_or_model)


def verify_export(path, run_or_model, questions, *, tokenizer=None, max_new_tokens: int = 64) -> ExportCheck:
    """Ask the GGUF file (read back by transformers, with only its own chat template) and the model in the course
    the same questions, greedily: how many answers are identical, the key-fact score of each, the file sizes."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CourseError(f"{path}: no such GGUF file. Export one first (export_gguf, or `python -m llmcourse "
                          "export RUN`).")
    table = _questions(questions)
    model, tokenizer = _course_model(run_or_model, tokenizer)
    asked = list(table["question"])
    course = generate(model, tokenizer, asked, max_new_tokens=max_new_tokens)
    exported_model, exported_tokenizer = load_gguf(path)
    exported = generate(exported_model, exported_tokenizer, asked, max_new_tokens=max_new_tokens)
    table = table.assign(course=course, gguf=exported, identical=[a == b for a, b in zip(course, exported)])
    if "reference" in table:
        for column, answers in (("key_fact_course", course), ("key_fact_gguf", exported)):
            table[column] = [contains_key_fact(a, r, q) for a, r, q in zip(answers, table["reference"], asked)]
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return ExportCheck(path, table, path.stat().st_size, size)
