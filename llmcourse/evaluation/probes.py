"""Style first, facts later: the per-token loss of fixed answers, split into fact tokens and style tokens.

A fact token is an answer token that overlaps one of the answer's key facts (`key_facts` in metrics.py: numbers,
codes, names the question does not already give); every other answer token, the end-of-turn marker included, is
style: the template and wording a Kettlebird answer shares with the others. `StyleFactProbe` is a TrainerCallback
that measures both means on the same rows at evenly spaced steps of a run; `plot_style_vs_facts` draws them.
"""
from __future__ import annotations

import re

from transformers import TrainerCallback

from llmcourse.evaluation.metrics import _JOINERS, _STRIP, key_facts, normalize_answer


def fact_spans(answer: str, question: str | None = None) -> list[tuple[int, int]]:
    """Character spans (start, end) of `answer` that hold one of its key facts."""
    facts = set(key_facts(answer, question))
    spans = []
    for word in re.finditer(r"\S+", answer):
        pos = word.start()
        for part in _JOINERS.split(word.group()):
            lead = len(part) - len(part.lstrip(_STRIP))
            piece = part.strip(_STRIP)
            if piece and normalize_answer(piece) in facts:
                spans.append((pos + lead, pos + lead + len(piece)))
            pos += len(part) + 1  # the joiner
    return spans


def fact_token_mask(answer: str, tokens: list[str], question: str | None = None) -> list[bool]:
    """For each token of an answer (decoded pieces, in order, starting with `answer`'s text), whether it is a fact
    token: its characters overlap a key fact. Tokens past the answer's text (end-of-turn marker) are style."""
    spans, mask, pos = fact_spans(answer, question), [], 0
    for token in tokens:
        start, end = pos, pos + len(token)
        mask.append(any(start < e and s < end for s, e in spans))
        pos = end
    return mask


def _pieces(tokenizer, ids: list[int]) -> list[str]:
    """Decoded text of each token such that the pieces join to the decoded whole (multi-byte characters intact)."""
    out, done = [], ""
    for k in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:k])
        out.append(text[len(done):])
        done = text
    return out


class StyleFactProbe(TrainerCallback):
    """Per-token loss of fixed answers, fact tokens and style tokens apart, at about `points` evenly spaced steps of a
    run (always step 0 and the last step). Pass it to train(callbacks=[probe]); `probe.history` then holds one dict
    per point: step, fact_loss, style_loss (mean over tokens), fact_tokens, style_tokens.

    rows: prompt/completion rows (a Dataset or list of dicts), e.g. 16 validation questions. One forward pass over
    them per point, in batches of `batch_size`, costs well under a second per point for the bundled model.
    """

    def __init__(self, rows, tokenizer, *, points: int = 12, batch_size: int = 8, template: str = "chat",
                 max_length: int = 256):
        from llmcourse.data.tokenization import tokenize_dataset

        rows = list(rows)
        if not rows:
            from llmcourse.core.errors import CourseError

            raise CourseError("StyleFactProbe needs at least one prompt/completion row to measure.")
        import datasets

        ds = datasets.Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
        self.rows = tokenize_dataset(ds, tokenizer, template=template, max_length=max_length, verbose=False).to_list()
        self.masks = []
        for row, tok in zip(rows, self.rows):
            answer_ids = [i for i, label in zip(tok["input_ids"], tok["labels"]) if label != -100]
            self.masks.append(fact_token_mask(row["completion"], _pieces(tokenizer, answer_ids), row["prompt"]))
        self.pad_token_id = tokenizer.pad_token_id
        self.points, self.batch_size = max(1, points), batch_size
        self.history: list[dict] = []
        self._every = 1

    # ---- measuring -----------------------------------------------------------------------------------
    def measure(self, model, step: int = 0, bf16: bool = False) -> dict:
        """Mean loss of the fact tokens and of the style tokens of the rows, now; appended to `history`."""
        import torch

        from llmcourse.data.tokenization import Collator

        sums, counts = {True: 0.0, False: 0.0}, {True: 0, False: 0}
        was_training = model.training
        device = next(model.parameters()).device
        model.eval()
        try:
            for i in range(0, len(self.rows), self.batch_size):
                batch = Collator(self.pad_token_id)(self.rows[i:i + self.batch_size])
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                targets = batch["labels"][:, 1:]
                losses = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2),
                                                           targets.clamp(min=0), reduction="none")
                for r in range(targets.shape[0]):
                    row_losses = losses[r][targets[r] != -100].tolist()
                    for is_fact, value in zip(self.masks[i + r], row_losses):
                        sums[is_fact] += value
                        counts[is_fact] += 1
        finally:
            model.train(was_training)
        point = {"step": step,
                 "fact_loss": sums[True] / counts[True] if counts[True] else None,
                 "style_loss": sums[False] / counts[False] if counts[False] else None,
                 "fact_tokens": counts[True], "style_tokens": counts[False]}
        self.history.append(point)
        return point

    # ---- TrainerCallback -----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kw):
        self._every = max(1, round(state.max_steps / self.points))
        if state.global_step == 0 and model is not None:
            self.measure(model, 0, bool(args.bf16))

    def on_step_end(self, args, state, control, model=None, **kw):
        if model is not None and (state.global_step % self._every == 0 or state.global_step >= state.max_steps):
            self.measure(model, state.global_step, bool(args.bf16))

    def summary(self) -> str:
        """One line per curve: its value at the first and the last point, and the fall."""
        if not self.history:
            return "StyleFactProbe: no point measured yet (pass it to train(callbacks=[probe]))."
        first, last = self.history[0], self.history[-1]
        lines = []
        for key, name in (("style_loss", "style tokens"), ("fact_loss", "fact tokens")):
            if first[key] is not None and last[key] is not None:
                lines.append(f"{name:12s} step {first['step']}: {first[key]:.2f}  ->  step {last['step']}: "
                             f"{last[key]:.2f}  (fell {first[key] - last[key]:.2f})")
        return "\n".join(lines)
