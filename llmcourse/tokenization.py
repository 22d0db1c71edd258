"""Tokenize instruction examples with answer-only labels, and pad batches dynamically."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .templates import render

IGNORE = -100  # label value PyTorch's cross-entropy skips: these positions add nothing to the loss


def tokenize_example(prompt: str, completion: str, tokenizer, *, template: str = "chat", max_length: int = 256,
                     answer_only: bool = True, system: str | None = None) -> dict:
    """input_ids, attention_mask and labels for one example; labels are IGNORE on the prompt when answer_only.

    Truncation cuts the prompt from the left first, so the answer (and its end token) survives;
    `truncated` tells whether anything was cut, `answer_cut` whether even the answer had to be shortened.
    """
    r = render(prompt, completion, tokenizer, template, system)
    p_ids = tokenizer(r.prefix, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(r.answer, add_special_tokens=False)["input_ids"]
    truncated = len(p_ids) + len(a_ids) > max_length
    answer_cut = False
    if truncated:
        if len(a_ids) < max_length:  # the whole answer fits: cut the prompt from the left
            room = max_length - len(a_ids)
            p_ids = p_ids[len(p_ids) - room:]
        else:  # an answer longer than the whole budget: keep one prompt token, cut the answer's end
            p_ids = p_ids[-1:]
            a_ids = a_ids[: max_length - 1]
            answer_cut = True
    ids = p_ids + a_ids
    labels = ([IGNORE] * len(p_ids) if answer_only else list(p_ids)) + list(a_ids)
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels,
            "truncated": truncated, "answer_cut": answer_cut}


@dataclass
class Collator:
    """Pads a batch to its longest row (not to max_length): input_ids with pad, labels with IGNORE."""
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
            out["position_ids"] = torch.tensor([list(r["position_ids"]) + [0] * (longest - len(r["position_ids"]))
                                                for r in rows], dtype=torch.long)
        return out
