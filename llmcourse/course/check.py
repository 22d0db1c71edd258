"""Feedback on exercise answers: `check.labels(...)`, `check.exact_match_fn(...)`, `check.learning_rate(...)`.

Each check prints what is right or what is wrong and how to fix it, and returns True/False,
so a learner gets a hint instead of a bare assert.
"""
from __future__ import annotations

from llmcourse.data.tokenization import IGNORE


def _say(ok: bool, message: str) -> bool:
    print(("✔ " if ok else "✘ ") + message)
    return ok


def labels(input_ids: list[int], labels: list[int], tokenizer, answer: str) -> bool:
    """Check hand-made labels for one example: prompt masked with -100, answer and end token trained."""
    if len(input_ids) != len(labels):
        return _say(False, f"labels has {len(labels)} entries but input_ids has {len(input_ids)}: "
                           "they must line up one label per token.")
    trained = [i for i, l in enumerate(labels) if l != IGNORE]
    if not trained:
        return _say(False, "every label is -100, so nothing is trained: your template masks the answer too. "
                           "Keep -100 only on the prompt tokens.")
    if any(labels[i] != input_ids[i] for i in trained):
        return _say(False, "a trained label differs from its token: labels are the input ids themselves "
                           "(the model shifts them by one inside), or -100 where masked.")
    if trained[0] == 0:
        return _say(False, "the first token is trained: the prompt is not masked, so the loss also rewards "
                           "repeating the question. Put -100 on every prompt token.")
    if trained != list(range(trained[0], len(labels))):
        return _say(False, "the trained tokens are not one block at the end: mask the prompt, train the whole answer.")
    learned = tokenizer.decode([input_ids[i] for i in trained])
    if answer.strip() not in learned:
        return _say(False, f"the trained tokens read {learned!r}, which does not contain the whole answer "
                           f"{answer.strip()!r}: the mask starts too late or the answer was cut.")
    eos = tokenizer.eos_token_id
    if eos is not None and eos not in [input_ids[i] for i in trained]:
        return _say(False, "the end-of-sequence token is not trained: the model never learns to stop. "
                           "Append tokenizer.eos_token to the answer.")
    return _say(True, f"prompt masked ({trained[0]} tokens), answer and end token trained ({len(trained)} tokens).")


EXACT_MATCH_CASES = [  # (prediction, reference, expected)
    ("Paris", "Paris", 1.0),
    ("  the Paris. ", "paris", 1.0),                 # case, articles, punctuation, spaces
    ("27 months", "27 months.", 1.0),
    ("28 months", "27 months", 0.0),
    ("", "27 months", 0.0),
    ("The warranty lasts 27 months.", "27 months", 0.0),  # exact match is strict: a longer answer is not exact
]


def exact_match_fn(fn) -> bool:
    """Check a learner's exact_match(prediction, reference) against cases that catch the classic bugs."""
    for pred, ref, want in EXACT_MATCH_CASES:
        got = float(fn(pred, ref))
        if got != want:
            hint = ("normalise both strings the same way: lowercase, drop punctuation and articles, squeeze spaces"
                    if want == 1.0 else "compare the prediction with the *reference* (the original course compared "
                    "the wrong variable, which always matches)")
            return _say(False, f"exact_match({pred!r}, {ref!r}) gave {got}, expected {want}: {hint}.")
    return _say(True, f"all {len(EXACT_MATCH_CASES)} cases right, including the wrong-variable and normalisation traps.")


def learning_rate(lr: float, lora: bool = False) -> bool:
    """Check a learning rate is in the range that works for finetuning a small model (full or LoRA)."""
    low, high = (1e-4, 3e-3) if lora else (5e-6, 3e-4)
    kind = "LoRA" if lora else "full finetuning"
    if lr <= 0:
        return _say(False, "a learning rate must be positive.")
    if lr < low:
        return _say(False, f"{lr:g} is very low for {kind}: the loss will barely move in a short run. Try {low:g}–{high:g}.")
    if lr > high:
        return _say(False, f"{lr:g} is high for {kind}: expect spikes or NaN. Try {low:g}–{high:g}.")
    return _say(True, f"{lr:g} is in the usual range for {kind} ({low:g}–{high:g}).")
