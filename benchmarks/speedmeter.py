"""What every benchmark run measures the same way: step times, real tokens, losses, and the process's peak memory."""
from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path

from transformers import TrainerCallback


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (each benchmark run is its own process)."""
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


class SpeedMeter(TrainerCallback):
    """Times each optimizer step of a transformers/TRL Trainer, leaving evaluation and checkpoint saving out.

    A step's time runs from the end of the previous step (or the start of training) to the end of this one,
    so data loading, logging and callbacks are inside it; evaluation and saving, which Trainer runs between
    steps, are measured on their own and subtracted. Real tokens come from Trainer's non-padding counter
    (TrainingArguments.include_num_input_tokens_seen="non_padding"), losses from its per-step logs.
    """

    def __init__(self):
        self.step_seconds: list[float] = []
        self.step_tokens: list[int] = []
        self.losses: dict[int, float] = {}
        self.eval_seconds = self.save_seconds = 0.0
        self._mark = self._step_start = None
        self._excluded = 0.0
        self._tokens = 0

    def on_train_begin(self, args, state, control, **kw):
        self._step_start = self._mark = time.perf_counter()
        self._tokens = state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        self.step_seconds.append(now - self._step_start - self._excluded)
        self.step_tokens.append(state.num_input_tokens_seen - self._tokens)
        self._tokens = state.num_input_tokens_seen
        self._step_start = self._mark = now
        self._excluded = 0.0

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:  # a training log; evaluate() logs its metrics just before on_evaluate
            self._mark = time.perf_counter()
            self.losses[state.global_step] = float(logs["loss"])

    def on_evaluate(self, args, state, control, **kw):
        now = time.perf_counter()
        self.eval_seconds += now - self._mark
        self._excluded += now - self._mark
        self._mark = now

    def on_save(self, args, state, control, **kw):
        now = time.perf_counter()
        self.save_seconds += now - self._mark
        self._excluded += now - self._mark
        self._mark = now

    def result(self) -> dict:
        """The measured numbers as a dict (see summarize)."""
        losses = [self.losses[k] for k in sorted(self.losses)]
        return summarize(self.step_seconds, self.step_tokens, losses, eval_seconds=self.eval_seconds,
                         save_seconds=self.save_seconds)


WARMUP_STEPS = 2  # left out of the steady speed: the first steps warm up caches, allocate, and compile


def summarize(step_seconds: list[float], step_tokens: list[int], losses: list[float], **extra) -> dict:
    """Per-step times, tokens and losses -> steady tokens/s and s/step (after the first WARMUP_STEPS steps, when at
    least 2 steps remain; those first steps' seconds are reported on their own), final loss (mean of the last
    quarter of the steps)."""
    skip = WARMUP_STEPS if len(step_seconds) >= WARMUP_STEPS + 2 else 0
    seconds, tokens = sum(step_seconds[skip:]), sum(step_tokens[skip:])
    tail = losses[-max(1, math.ceil(len(losses) / 4)):] if losses else []
    return {"steps": len(step_seconds), "tokens": int(sum(step_tokens)), "train_seconds": round(sum(step_seconds), 3),
            "warmup_steps": skip, "warmup_seconds": round(sum(step_seconds[:skip]), 3),
            "tokens_per_s": round(tokens / seconds, 2) if seconds else None,
            "s_per_step": round(seconds / len(step_seconds[skip:]), 3) if step_seconds else None,
            "median_step_s": round(statistics.median(step_seconds), 3) if step_seconds else None,
            "final_loss": round(sum(tail) / len(tail), 4) if tail else None, "final_loss_steps": len(tail),
            "losses": [round(x, 4) for x in losses], "step_seconds": [round(s, 3) for s in step_seconds],
            "step_tokens": [int(t) for t in step_tokens], **{k: round(v, 3) for k, v in extra.items()}}


def write_result(path: str | Path, result: dict) -> None:
    """Add this process's peak memory and write the run's JSON (the parent reads it)."""
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    Path(path).write_text(json.dumps(result, indent=1))
