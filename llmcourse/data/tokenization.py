"""Tokenize instruction examples with answer-only labels, report truncation, and pad batches dynamically."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from llmcourse.core.errors import CourseError
from llmcourse.data.packing import IGNORE, pack_examples
from llmcourse.data.templates import render_pieces

SIDES = ("left", "right", "drop")


def _answer_start(trained: list) -> int:
    """Index where the last run of trained tokens (the final answer) begins; len(trained) if nothing is trained."""
    if not any(trained):
        return len(trained)
    start = max(i for i, t in enumerate(trained) if t)
    while start > 0 and trained[start - 1]:
        start -= 1
    return start


def _truncate(ids: list, trained: list, max_length: int, side: str) -> tuple[list, list, bool, bool]:
    """Cut a token list to max_length -> ids, trained, truncated, answer_cut.

    side="left" protects the final answer (everything from its first token on) and cuts the prompt's start;
    side="right" cuts the end, as a plain tokenizer would, so long examples lose their answer's end.
    """
    if len(ids) <= max_length:
        return ids, trained, False, False
    start = _answer_start(trained)
    if side == "right":
        return ids[:max_length], trained[:max_length], True, any(trained[max_length:])
    if len(ids) - start <= max_length - 1:  # the answer fits with at least one prompt token before it
        cut = len(ids) - max_length
        return ids[cut:], trained[cut:], True, False
    # An answer longer than the whole budget: keep one prompt token before it, cut the answer's end.
    first = max(start - 1, 0)
    return ids[first:first + max_length], trained[first:first + max_length], True, True


def tokenize_pieces(pieces: list[tuple[list, bool]], *, max_length: int = 256, answer_only: bool = True,
                    truncation: str = "left") -> dict:
    """Token-id pieces (ids, trained) -> input_ids, attention_mask, labels, truncated, answer_cut."""
    if truncation not in SIDES:
        raise CourseError(f"truncation={truncation!r}: use one of {SIDES}.")
    ids = [i for piece, _ in pieces for i in piece]
    trained = [t for piece, t in pieces for _ in piece]
    ids, trained, truncated, answer_cut = _truncate(ids, trained, max_length, truncation)
    labels = [i if (t or not answer_only) else IGNORE for i, t in zip(ids, trained)]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels,
            "truncated": truncated, "answer_cut": answer_cut}


def tokenize_example(prompt: str, completion: str, tokenizer, *, template: str = "chat", max_length: int = 256,
                     answer_only: bool = True, system: str | None = None, truncation: str = "left") -> dict:
    """input_ids, attention_mask and labels for one example; labels are IGNORE on the prompt when answer_only.

    Truncation (truncation="left", the default) cuts the prompt from the left first, so the answer and its
    end token survive; "right" cuts the end like a plain tokenizer would (answers get cut). `truncated` tells
    whether anything was cut, `answer_cut` whether the answer was shortened.
    """
    example = {"prompt": prompt, "completion": completion, "system": system}
    pieces = [(tokenizer(text, add_special_tokens=False)["input_ids"], t)
              for text, t in render_pieces(example, tokenizer, template)]
    return tokenize_pieces(pieces, max_length=max_length, answer_only=answer_only,
                           truncation="left" if truncation == "drop" else truncation)


@dataclass
class TokenizationReport:
    """What tokenize_dataset did: rows in/out, how many were truncated, how many lost part of their answer."""
    rows: int
    max_length: int
    truncation: str
    truncated: int = 0
    answer_cut: int = 0
    dropped: int = 0
    blocks: int | None = None
    lengths: list = field(default_factory=list, repr=False)  # token length of each row before truncation

    def __str__(self) -> str:
        how = {"left": "prompt cut from the left", "right": "end cut", "drop": "rows dropped"}[self.truncation]
        s = (f"tokenized {self.rows} rows (max_length {self.max_length}): {self.truncated} truncated ({how}), "
             f"{self.answer_cut} with the answer cut")
        if self.dropped:
            s += f", {self.dropped} dropped"
        if self.blocks is not None:
            s += f"; packed into {self.blocks} blocks"
        return s


def _batch_pieces(ds, tokenizer, template: str) -> list[list[tuple[list, bool]]]:
    """Render every row to pieces and tokenize all piece texts in one fast batched call."""
    rendered = [render_pieces(row, tokenizer, template) for row in ds]
    texts = [t for pieces in rendered for t, _ in pieces]
    ids = iter(tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
    return [[(next(ids), t) for _, t in pieces] for pieces in rendered]


def tokenize_dataset(ds, tokenizer, *, template: str = "chat", max_length: int = 256, answer_only: bool = True,
                     packing: bool = False, seed: int = 0, truncation: str = "left", verbose: bool = True):
    """A canonical dataset -> Dataset of input_ids, attention_mask, labels (+ position_ids when packed).

    prompt/completion and messages rows: one row per example, loss on the answers only (answer_only),
    truncation reported (truncation="left"|"right"|"drop"). packing=True fills blocks of max_length with
    several examples (see llmcourse.data.packing). A `text` dataset is self-supervised: all pages joined, each
    ending in EOS, cut into max_length blocks with labels = input_ids. The report is printed and kept
    as `.tokenization_report` on the returned Dataset (a DatasetDict maps each split).
    """
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        return datasets.DatasetDict({k: tokenize_dataset(d, tokenizer, template=template, max_length=max_length,
                                                         answer_only=answer_only, packing=packing, seed=seed,
                                                         truncation=truncation, verbose=verbose)
                                     for k, d in ds.items()})
    if truncation not in SIDES:
        raise CourseError(f"truncation={truncation!r}: use one of {SIDES}.")
    if max_length < 1:
        raise CourseError(f"max_length={max_length}: an example needs at least 1 token (CLI: --max-length).")
    if len(ds) == 0:
        raise CourseError("The dataset is empty: there is nothing to tokenize.")
    if "text" in ds.column_names and "prompt" not in ds.column_names and "messages" not in ds.column_names:
        return _tokenize_text(ds, tokenizer, max_length, verbose)
    all_pieces = _batch_pieces(ds, tokenizer, template)
    report = TokenizationReport(rows=len(ds), max_length=max_length, truncation=truncation)
    rows = []
    for pieces in all_pieces:
        report.lengths.append(sum(len(p) for p, _ in pieces))
        row = tokenize_pieces(pieces, max_length=max_length, answer_only=answer_only,
                              truncation="left" if truncation == "drop" else truncation)
        report.truncated += row["truncated"]
        report.answer_cut += row["answer_cut"] and truncation != "drop"
        if truncation == "drop" and row["truncated"]:
            report.dropped += 1
            continue
        rows.append({k: row[k] for k in ("input_ids", "attention_mask", "labels")})
    if not rows:
        raise CourseError(f"Every row is longer than max_length={max_length} and truncation='drop' removed them all.")
    if packing:
        rows = pack_examples(rows, max_length=max_length, seed=seed)
        report.blocks = len(rows)
    out = datasets.Dataset.from_list(rows)
    out.tokenization_report = report
    if verbose:
        print(report)
    return out


def _tokenize_text(ds, tokenizer, max_length: int, verbose: bool):
    """Plain pages -> consecutive blocks of max_length tokens, every token trained."""
    import datasets

    stream = [i for pieces in _batch_pieces(ds, tokenizer, "chat") for p, _ in pieces for i in p]
    blocks = [stream[s:s + max_length] for s in range(0, len(stream), max_length)]
    if len(blocks) > 1 and len(blocks[-1]) < 2:
        blocks.pop()  # a one-token tail teaches nothing (its label is never predicted)
    out = datasets.Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks],
                                      "labels": [list(b) for b in blocks]})
    out.tokenization_report = TokenizationReport(rows=len(ds), max_length=max_length, truncation="left",
                                                 blocks=len(blocks), lengths=[len(stream)])
    if verbose:
        print(f"tokenized {len(ds)} pages: {len(stream):,} tokens in {len(blocks)} blocks of up to {max_length}")
    return out


@dataclass
class Collator:
    """Pads a batch to its longest row (not to max_length): input_ids with pad, labels with IGNORE.

    Packed rows (with position_ids) get no attention_mask: with position_ids restarting at 0 per example and
    no mask, transformers builds a block-diagonal causal mask, so no token attends to another example
    (see llmcourse.data.packing). Their padding gets position_ids 0, 1, ... so it forms a segment of its own.
    """
    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: list[dict]) -> dict:
        longest = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for r in rows:
            pad = longest - len(r["input_ids"])
            batch["input_ids"].append(list(r["input_ids"]) + [self.pad_token_id] * pad)
            batch["attention_mask"].append(list(r.get("attention_mask") or [1] * len(r["input_ids"])) + [0] * pad)
            batch["labels"].append(list(r["labels"]) + [IGNORE] * pad)
        out = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        if "position_ids" in rows[0]:  # packed rows restart positions at each example
            del out["attention_mask"]
            out["position_ids"] = torch.tensor([list(r["position_ids"]) + list(range(longest - len(r["position_ids"])))
                                                for r in rows], dtype=torch.long)
        return out
