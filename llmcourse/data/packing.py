"""Packing: several short tokenized examples in one fixed-length block, without mixing their labels.

Padding every example to the longest wastes compute on pad tokens; packing fills each block of
max_length tokens with whole examples instead. Two things keep the examples apart:

1. Labels: the first token of every example gets label -100, so no example's first token is
   predicted from the previous example's last token.
2. Attention: position_ids restart at 0 for every example. In transformers 5 (masking_utils.
   find_packed_sequence_indices), when a Llama-style model gets position_ids but NO attention_mask
   and runs without a KV cache (model.config.use_cache=False, which Trainer sets from
   TrainingArguments.use_cache, False by default), it reads each restart as a new sequence and builds a
   block-diagonal causal mask. That works with the CPU's "sdpa" and "eager" attention alike, so a token
   never attends to an earlier example in its block (tests/test_packing.py checks the logits equal the
   example run alone; the same check passed on an H100 with CUDA sdpa and eager). llmcourse.data.tokenization.Collator therefore drops attention_mask for packed rows.
   If an attention_mask IS passed, or a KV cache is used, the mask is plain causal and tokens DO see the
   earlier examples in their block: the labels stay clean but the context leaks.
"""
from __future__ import annotations

import random

IGNORE = -100  # label value PyTorch's cross-entropy skips: these positions add nothing to the loss


def pack_examples(rows: list[dict], *, max_length: int, seed: int = 0) -> list[dict]:
    """Tokenized rows -> blocks of at most max_length tokens (first-fit decreasing, ties shuffled by seed).

    Each block has input_ids, attention_mask (all ones; the Collator drops it), labels (-100 at
    every example's first token) and position_ids (0, 1, ... restarting per example).
    """
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: -len(rows[i]["input_ids"]))  # stable: equal lengths keep the shuffled order
    blocks: list[list[int]] = []  # example indices per block
    room: list[int] = []
    for i in order:
        n = min(len(rows[i]["input_ids"]), max_length)
        slot = next((b for b, free in enumerate(room) if free >= n), None)
        if slot is None:
            blocks.append([])
            room.append(max_length)
            slot = len(blocks) - 1
        blocks[slot].append(i)
        room[slot] -= n
    return [_join([rows[i] for i in members], max_length) for members in blocks]


def _join(members: list[dict], max_length: int) -> dict:
    out = {"input_ids": [], "attention_mask": [], "labels": [], "position_ids": []}
    for r in members:
        ids = list(r["input_ids"])[:max_length]
        labels = list(r["labels"])[:max_length]
        labels[0] = IGNORE  # never learn an example's first token from the previous example
        out["input_ids"] += ids
        out["attention_mask"] += [1] * len(ids)
        out["labels"] += labels
        out["position_ids"] += list(range(len(ids)))
    return out


def example_spans(position_ids: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each example inside a packed block, read from where position_ids restart."""
    starts = [i for i, p in enumerate(position_ids) if p == 0] + [len(position_ids)]
    return list(zip(starts[:-1], starts[1:]))


def packing_cross_talk(model, first: list[int], second: list[int], *, replacement: list[int] | None = None,
                       use_cache: bool | None = None) -> float:
    """How far the second example's logits move when the first example's tokens change, both packed in one row.

    The row is packed as the course packs it (position_ids restart at 0, no attention_mask). 0 means the examples
    are kept apart (a block-diagonal mask); anything else means the second example reads the first. use_cache=None
    leaves the model's own setting (model.config.use_cache, True for a freshly loaded model, False under Trainer):
    with a KV cache transformers sees no packed sequences and builds a plain causal mask. replacement: the other
    first example (default: `first` in reverse order, the same length)."""
    import torch

    other = list(reversed(first)) if replacement is None else list(replacement)
    kwargs = {} if use_cache is None else {"use_cache": use_cache}
    was_training = model.training
    model.eval()
    try:
        logits = []
        with torch.inference_mode():
            for head in (list(first), other):
                ids = torch.tensor([head + list(second)], device=next(model.parameters()).device)
                pos = torch.tensor([list(range(len(head))) + list(range(len(second)))], device=ids.device)
                logits.append(model(input_ids=ids, position_ids=pos, **kwargs).logits[0, len(head):].float())
    finally:
        model.train(was_training)
    return (logits[0] - logits[1]).abs().max().item()
