"""Evaluating a model on the course questions: answers, metrics, loss, an optional LLM judge, and reports.

`evaluate_model(model)` answers every held-out question in batches, scores each answer with the
metrics in `llmcourse.evaluation.metrics`, adds the answer loss (and perplexity) of the reference answers, and
returns an `EvalResult`: one row per question, a summary per split, the worst answers, and `save()`.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llmcourse.core.errors import CourseError
from llmcourse.core.fastmode import capped
from llmcourse.core.paths import BUNDLED
from llmcourse.evaluation.metrics import score_answer
from llmcourse.evaluation.uncertainty import cohens_kappa
from llmcourse.data.loading import load_instruction_data
from llmcourse.data.tokenization import Collator, IGNORE, tokenize_example
from llmcourse.training.losses import can_skip_unlabelled_logits, linear_cross_entropy
from llmcourse.models.loading import base_model, system_prompt
from llmcourse.models.backends import LocalLLM
from llmcourse.models.retrieval import RetrievalLLM, Retriever
from llmcourse.training.runs import run_model

METRIC_NAMES = ["exact_match", "token_f1", "rouge_l", "key_fact"]
JUDGE_CAVEAT = (
    "An LLM judge is one more model's opinion, not a measurement: a small judge such as the bundled 135M "
    "model agreed with the key-fact score no better than chance in this course's runs (and sometimes gives no"
    " verdict at all), and even large judges favour long, fluent, confident answers and their own style, and "
    "change their verdict with the wording of the prompt. Use it to sort answers and spot-check them, next to"
    " the exact metrics, after checking on a few dozen answers you graded yourself that it agrees with you."
)
JUDGE_PROMPT = (
    "You grade answers about a company's documentation.\nQuestion: {question}\nReference answer: {reference}\n"
    "Candidate answer: {prediction}\nDoes the candidate state the same fact as the reference? Reply yes or no."
)


@dataclass
class EvalResult:
    """One model's evaluation: `table` has a row per question, `summary` a row per split (and "all")."""
    name: str
    table: pd.DataFrame
    summary: pd.DataFrame
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def worst(self, n: int = 3, metric: str = "token_f1") -> pd.DataFrame:
        """The n lowest-scoring answers of each split, next to their reference (for error analysis)."""
        return worst_answers(self.table, n, metric)

    def save(self, folder) -> Path:
        """Write metrics.json (summary + info) and answers.csv (every answer) into `folder`."""
        return save_report(self, folder)

    def _repr_html_(self):
        return self.summary._repr_html_()


def question_set(data="kettlebird", splits=("test", "unseen"), limit: int | None = None, seed: int = 0, *,
                 skip_bad_rows: bool = False) -> pd.DataFrame:
    """The questions to ask: id, fact_id, split, question, reference, source; `limit` rows per split, sampled.

    In fast mode (the test suite) a `limit` is capped at 3 rows per split; no limit stays all rows."""
    dd = data if hasattr(data, "keys") else load_instruction_data(data, skip_bad_rows=skip_bad_rows, verbose=False)
    limit = None if limit is None else capped(limit, 3)
    frames = []
    for split in [splits] if isinstance(splits, str) else splits:
        if split not in dd:
            raise CourseError(f"The data has no split {split!r}; it has {list(dd)}. Pick one of those with --split.")
        df = dd[split].to_pandas()
        missing = {"prompt", "completion"} - set(df.columns)
        if missing:
            raise CourseError(f"Split {split!r} has no {sorted(missing)} column: evaluation needs question/answer rows.")
        if limit is not None and limit < len(df):
            df = df.sample(n=limit, random_state=seed).sort_index()
        df = df.rename(columns={"prompt": "question", "completion": "reference"}).assign(split=split)
        for col in ("id", "fact_id", "source"):
            df[col] = df[col] if col in df else ""
        frames.append(df[["id", "fact_id", "split", "question", "reference", "source"]])
    return pd.concat(frames, ignore_index=True)


def score_table(questions: pd.DataFrame, predictions: list[str]) -> pd.DataFrame:
    """The question table with a `prediction` column and one column per metric."""
    table = questions.reset_index(drop=True).assign(prediction=list(predictions))
    scores = [score_answer(p, r, q) for p, r, q in zip(table["prediction"], table["reference"], table["question"])]
    return pd.concat([table, pd.DataFrame(scores, columns=METRIC_NAMES)], axis=1)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric per split, plus an "all" row, with the number of questions `n`."""
    cols = [c for c in METRIC_NAMES + ["judge"] if c in table]
    per_split = table.groupby("split", sort=False)[cols].mean()
    per_split.loc["all"] = table[cols].mean()
    counts = table.groupby("split", sort=False).size()
    per_split.insert(0, "n", [int(counts.get(s, len(table))) for s in per_split.index])
    return per_split


def answer_loss(model, tokenizer, prompts: list[str], completions: list[str], *, template: str = "chat",
                batch_size: int = 16, max_length: int = 256) -> float:
    """Mean cross-entropy per answer token of the reference answers (exp of it is the perplexity)."""
    sums, counts = answer_token_losses(model, tokenizer, prompts, completions, template=template,
                                       batch_size=batch_size, max_length=max_length)
    return sum(sums) / max(sum(counts), 1)


def answer_token_losses(model, tokenizer, prompts: list[str], completions: list[str], *, template: str = "chat",
                        batch_size: int = 16, max_length: int = 256) -> tuple[list[float], list[int]]:
    """For each (prompt, completion): the summed cross-entropy of its answer tokens, and how many there are."""
    import torch

    fast = can_skip_unlabelled_logits(model)
    system = system_prompt(model) if template == "chat" else None  # the system turn the model was trained with
    rows = [tokenize_example(p, c, tokenizer, template=template, max_length=max_length, system=system)
            for p, c in zip(prompts, completions)]
    device, sums, counts = next(model.parameters()).device, [], []
    collate = Collator(tokenizer.pad_token_id)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = collate([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows[start:start + batch_size]])
            batch = {k: v.to(device) for k, v in batch.items()}
            labels = batch["labels"][:, 1:]
            keep = labels != IGNORE
            if fast:  # the vocabulary projection only at answer positions (the same sums, less work and memory)
                sums += _row_sums(model, batch, keep)
            else:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
                per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE,
                                                              reduction="none")
                sums += per_token.sum(dim=1).tolist()
            counts += keep.sum(dim=1).tolist()
    model.train(was_training)
    return sums, [int(c) for c in counts]


def _row_sums(model, batch, keep) -> list[float]:
    """Each row's summed answer-token loss from one decoder pass over the batch (logits only where labels are)."""
    import torch

    base = base_model(model)
    hidden = base.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                use_cache=False).last_hidden_state[:, :-1]
    targets, head = batch["labels"][:, 1:], base.get_output_embeddings()
    out = []
    for i in range(hidden.shape[0]):
        h, t = hidden[i][keep[i]], targets[i][keep[i]]
        if type(head) is torch.nn.Linear and head.bias is None:
            out.append(linear_cross_entropy(h, head.weight, t).item())
        else:
            out.append(torch.nn.functional.cross_entropy(head(h).float(), t, reduction="sum").item())
    return out


def judge_answers(judge, table: pd.DataFrame) -> list[float]:
    """LLM-as-judge: 1.0 when the judge says the prediction states the reference's fact, 0.0 if not, NaN if unclear.

    Read JUDGE_CAVEAT before trusting it.
    """
    prompts = [JUDGE_PROMPT.format(question=q, reference=r, prediction=p)
               for q, r, p in zip(table["question"], table["reference"], table["prediction"])]
    return [_verdict(reply) for reply in judge.complete(prompts)]


@dataclass
class Agreement:
    """How often a judge's verdicts match other grades (yours, or a metric's), and Cohen's kappa beyond chance."""
    n: int
    agreement: float
    kappa: float
    always_yes: float
    left_out: int = 0
    name: str = "the judge"
    against: str = "the grades"

    def __str__(self) -> str:
        if self.n == 0:
            return f"{self.name} gave no verdict on any of the {self.left_out} answers: there is no agreement to measure"
        kappa = ("undefined (one label only)" if math.isnan(self.kappa)
                 else f"{self.kappa:.2f} (0 = no better than chance, 1 = full agreement)")
        line = (f"{self.name} agrees with {self.against} on {round(self.agreement * self.n)} of {self.n} answers "
                f"({self.agreement:.0%}); Cohen's kappa {kappa}; "
                f"a judge that always said yes would agree on {self.always_yes:.0%}")
        return line + (f"; {self.left_out} without a verdict left out" if self.left_out else "")


def judge_agreement(verdicts, grades, *, name: str = "the judge", against: str = "the grades") -> Agreement:
    """Raw agreement and Cohen's kappa of 1/0 verdicts against 1/0 grades of the same answers.

    Raw agreement alone flatters a judge that says "yes" to everything: it matches as often as answers are right.
    Kappa is 0 for such a judge. Answers without a verdict (NaN) on either side are left out; with none left,
    the Agreement has n = 0 and says so."""
    verdicts, grades = [float(v) for v in verdicts], [float(g) for g in grades]
    if len(verdicts) != len(grades):
        raise CourseError(f"judge_agreement needs one verdict per grade: got {len(verdicts)} and {len(grades)}.")
    pairs = [(v, g) for v, g in zip(verdicts, grades) if not (math.isnan(v) or math.isnan(g))]
    n = len(pairs)
    if n == 0:  # a small judge may give no verdict at all: say so, do not stop the notebook
        return Agreement(0, math.nan, math.nan, math.nan, len(verdicts), name, against)
    return Agreement(n, sum(v == g for v, g in pairs) / n, cohens_kappa(*zip(*pairs)),
                     sum(g == 1 for _, g in pairs) / n, len(verdicts) - n, name, against)


def _verdict(reply: str) -> float:
    m = re.search(r"\b(yes|no)\b", str(reply).lower())
    return float("nan") if m is None else float(m.group(1) == "yes")


def _as_llm(model, tokenizer=None, **kwargs):
    if hasattr(model, "complete"):
        return model
    if hasattr(model, "history") and hasattr(model, "config"):  # a training Run: its model, its prompt template
        kwargs.update(name=kwargs.get("name") or model.name, template=model.config.template)
        return LocalLLM(*run_model(model), **kwargs)
    return LocalLLM(model, tokenizer, **kwargs)


def evaluate_model(model=BUNDLED, data="kettlebird", *, splits=("test", "unseen"), limit: int | None = None,
                   tokenizer=None, name: str | None = None, retrieval=False, judge=None, loss: bool = True,
                   max_new_tokens: int = 48, batch_size: int | None = None, template: str = "chat", seed: int = 0,
                   questions: pd.DataFrame | None = None, skip_bad_rows: bool = False) -> EvalResult:
    """Answer the held-out questions with `model` and score them.

    model: a name or path for `load_model` (a run folder too), a training Run, a loaded model (pass `tokenizer`), or any
    LLM with `complete()` (LocalLLM, LaminiLLM, RetrievalLLM). retrieval=True (or a Retriever) puts the
    top passages of the docs in each prompt. judge: an LLM that grades each answer (see JUDGE_CAVEAT).
    loss: also compute the answer loss/perplexity of the reference answers (local models only).
    skip_bad_rows: skip broken rows of `data` instead of stopping at the first. The data loads before the model,
    so a broken file fails at once.
    """
    qs = questions if questions is not None else question_set(data, splits, limit, seed, skip_bad_rows=skip_bad_rows)
    base = llm = _as_llm(model, tokenizer, name=name, max_new_tokens=max_new_tokens, batch_size=batch_size,
                         template=template)
    if retrieval is not False and retrieval is not None:
        llm = RetrievalLLM(base, retrieval if isinstance(retrieval, Retriever) else None)
    t0 = time.time()
    table = score_table(qs, llm.complete(list(qs["question"])))
    if judge is not None:
        table["judge"] = judge_answers(judge, table)
    seconds = time.time() - t0
    summary = summarize(table)
    local = getattr(base, "model", None)
    if loss and local is not None and llm is base:  # loss of the model alone: meaningless next to retrieval answers
        sums, counts = answer_token_losses(local, base.tokenizer, list(table["question"]), list(table["reference"]),
                                           template=base.template, batch_size=batch_size or 16)
        table["loss"] = [s / max(c, 1) for s, c in zip(sums, counts)]  # per answer: for paired comparisons
        for split, part in list(table.groupby("split", sort=False)) + [("all", table)]:
            value = sum(sums[i] for i in part.index) / max(sum(counts[i] for i in part.index), 1)  # per token
            summary.loc[split, "loss"], summary.loc[split, "perplexity"] = value, math.exp(min(value, 50))
    info = {"model": name or llm.name, "questions": len(table), "seconds": round(seconds, 1),
            "max_new_tokens": max_new_tokens, "template": getattr(base, "template", None),
            "judge": getattr(judge, "name", None)}
    return EvalResult(name or llm.name, table, summary, seconds, info)


def worst_answers(table: pd.DataFrame, n: int = 3, metric: str = "token_f1") -> pd.DataFrame:
    """The n lowest-`metric` rows of each split: question, reference and prediction side by side."""
    cols = ["split", "id", "question", "reference", "prediction", metric] + (["key_fact"] if metric != "key_fact" else [])
    worst = table.sort_values([metric, "id"], kind="stable").groupby("split", sort=False).head(n)
    return worst.sort_values(["split", metric], kind="stable")[cols].reset_index(drop=True)


def save_report(result: EvalResult, folder) -> Path:
    """metrics.json (summary per split + info) and answers.csv (every question and answer) under `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = {split: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
               for split, row in result.summary.to_dict(orient="index").items()}
    report = {"name": result.name, "info": result.info, "metrics": summary}
    (folder / "metrics.json").write_text(json.dumps(report, indent=2, default=float))
    result.table.to_csv(folder / "answers.csv", index=False)
    return folder / "metrics.json"
