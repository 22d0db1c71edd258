"""Trainer callbacks that make a run observable and safe: history, progress bar, stop button/Ctrl-C, divergence guard."""
from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time

import psutil
import torch
from transformers import TrainerCallback

from llmcourse.plots.figures import LiveFigure
from llmcourse.training.config import eval_interval
from llmcourse.training.runs import HISTORY_COLUMNS, Run

SNAPSHOT_LIMIT = 300_000_000  # trainable parameters up to which the guard keeps an in-memory copy (1.2 GB)


def history_rows(log_history: list[dict]) -> list[dict]:
    """Trainer's log_history -> our history rows (train-loss rows and eval rows; the final summary is left out)."""
    rows = []
    for e in log_history:
        if "loss" not in e and "eval_loss" not in e:
            continue
        row = {k: e.get(k) for k in HISTORY_COLUMNS}
        row["tokens"] = e.get("num_input_tokens_seen")
        rows.append(row)
    return rows


class HistoryCallback(TrainerCallback):
    """Keeps run.history in step with Trainer's log_history and stamps each entry with cumulative wall time; saves
    the run's record and history with each checkpoint.

    The stamp lives in log_history itself, so checkpoints carry it and a resumed run continues its clock and curve.
    """

    def __init__(self, run: Run):
        self.run = run

    def on_train_begin(self, args, state, control, **kw):
        self.run.history = history_rows(state.log_history)  # non-empty when resuming from a checkpoint
        self.offset = max([e.get("seconds") or 0.0 for e in state.log_history], default=0.0)
        self.t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.log_history:
            return
        entry = state.log_history[-1]
        entry["seconds"] = round(self.offset + time.perf_counter() - self.t0, 3)
        if "loss" in entry or "eval_loss" in entry:
            self.run.history.extend(history_rows([entry]))
        self.run.tokens = state.num_input_tokens_seen
        self.run.seconds = entry["seconds"]
        rss_mb = psutil.Process().memory_info().rss / 2**20  # sampled: the process's memory while training
        self.run.peak_memory_mb = round(max(self.run.peak_memory_mb or 0, rss_mb))

    def on_save(self, args, state, control, **kw):
        # the record and history on disk keep up with each checkpoint: a run killed later still says how far it got
        if state.is_world_process_zero:
            self.run.save()


class StepTimer:
    """Seconds per step and time left, timed from the end of the first step: its one-off warm-up (first allocations,
    kernel selection, the start-of-run evaluation) would otherwise make the first estimates several times too long.
    Call step(global_step) at each step's end; both answers are None until a second step has ended."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.first = self.last = None  # (step, time) at the end of the first step and of the latest one

    def step(self, step: int) -> None:
        mark = (step, self.clock())
        if self.first is None:
            self.first = mark
        else:
            self.last = mark

    def seconds_per_step(self) -> float | None:
        if self.last is None or self.last[0] == self.first[0]:
            return None
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])

    def remaining(self, total_steps: int) -> float | None:
        """Seconds until step `total_steps` at the pace since the first step; None while warming up."""
        per_step = self.seconds_per_step()
        return None if per_step is None else per_step * (total_steps - self.last[0])


WARMING_UP = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<warming up{postfix}]"


@functools.cache
def _bar_class():
    from tqdm.auto import tqdm

    class StepBar(tqdm):
        """tqdm whose rate (and so ETA) comes from a StepTimer: "warming up" until the second step has ended."""
        timer: StepTimer | None = None

        @property
        def format_dict(self):
            d = super().format_dict
            per_step = self.timer.seconds_per_step() if self.timer is not None else None
            if per_step:
                d["rate"] = 1 / per_step
            else:
                d["bar_format"] = WARMING_UP
            return d

    return StepBar


class ProgressBar(TrainerCallback):
    """One tqdm bar (a widget in notebooks, text elsewhere) with loss, learning rate and an ETA that leaves out
    the first step's warm-up (see StepTimer); main process only."""

    def __init__(self, desc: str = "training", clock=time.perf_counter):
        self.desc, self.bar, self.clock = desc, None, clock

    def on_train_begin(self, args, state, control, **kw):
        if state.is_world_process_zero:
            self.timer = StepTimer(self.clock)
            self.bar = _bar_class()(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step",
                                    dynamic_ncols=True)
            self.bar.timer = self.timer

    def on_step_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.timer.step(state.global_step)
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kw):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{logs.get('learning_rate', 0):.1e}", refresh=False)

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SkipEvalBeforeTheLast(TrainerCallback):
    """No evaluation within half an evaluation interval of the last step, where the final one follows at once:
    76 steps with eval_steps=25 evaluate at 0, 25, 50 and 76, not also at 75. A run too short for 3 evaluations
    evaluates halfway too (config.eval_interval: 12 steps at eval_steps=10 evaluate at 0, 6 and 12). Goes before
    StopCallback, which asks for an evaluation when a run is stopped there."""

    def on_train_begin(self, args, state, control, **kw):
        if args.eval_strategy == "steps" and state.eval_steps < 10**9:  # train() passes 10**9 for eval_steps=0
            state.eval_steps = eval_interval(state.eval_steps, state.max_steps)

    def on_step_end(self, args, state, control, **kw):
        if control.should_evaluate and 0 < state.max_steps - state.global_step < state.eval_steps / 2:
            control.should_evaluate = False
        return control


class StopCallback(TrainerCallback):
    """Ends training after the current step when `flag` is set (Stop button, first Ctrl-C), saving a checkpoint."""

    def __init__(self, flag: threading.Event):
        self.flag = flag
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kw):
        if self.flag.is_set() and not control.should_training_stop:
            control.should_training_stop = True
            control.should_save = True  # so `resume=True` can continue from exactly here
            control.should_evaluate = args.eval_strategy != "no"
            self.stopped_at = state.global_step
        return control


@contextlib.contextmanager
def stop_on_interrupt(flag: threading.Event, saving: bool = False):
    """While training in the main thread, the first Ctrl-C, notebook stop button or SIGTERM (a kernel restart, a
    closed terminal, a job scheduler) sets `flag`, so the run stops after the current step with a checkpoint; a
    second one aborts at once. saving=True: around the final save, which the first one lets finish. Yields the list
    of signals received."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if flag.is_set():  # second time: stop right now
            raise KeyboardInterrupt
        flag.set()
        received.append(signum)
        what = "SIGTERM" if signum == signal.SIGTERM else "interrupt"
        then = "the model is being saved, which ends in a moment" if saving else \
            "stopping after the current step, with a checkpoint"
        print(f"\n{what}: {then} (send it again to abort at once) ...", flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def keeps_weight_copy(trainable_params: int, rollback: bool = True) -> bool:
    """Whether DivergenceGuard keeps an in-memory copy of the trainable weights (the memory rollback costs)."""
    return rollback and trainable_params <= SNAPSHOT_LIMIT


class DivergenceGuard(TrainerCallback):
    """Stops a run whose loss is NaN/inf or above `factor` x its early minimum, and puts back the last good weights.

    The loss of step t is computed with the weights from before update t, and it is known before that update
    is applied (Trainer calls on_pre_optimizer_step in between). So the guard checks it there: a good loss
    proves the current weights good and they become the one kept copy (trainable parameters only); a bad one
    means the weights went bad in the previous update, and the copy (from before it) is put back after this
    step's update. One copy, not two: for full finetuning that is the model's size in memory saved.
    `step_loss` returns the step's loss as Trainer will log it (summed over gradient accumulation, averaged
    over processes); train() passes CourseTrainer.step_loss. rollback=False (or a model over SNAPSHOT_LIMIT)
    keeps no copy: the guard still stops the run, and the way back is a checkpoint saved before the blow-up.
    """

    def __init__(self, factor: float, window: int = 10, step_loss=None, rollback: bool = True):
        self.factor, self.window, self.step_loss, self.rollback = factor, window, step_loss, rollback
        self.early: list[float] = []
        self.tripped: dict | None = None
        self.params = self.good = None
        self.good_step = None
        self.restore = False

    def on_train_begin(self, args, state, control, model=None, **kw):
        params = [p for p in model.parameters() if p.requires_grad]
        self.good_step = state.global_step  # the starting weights: good by definition
        if self.step_loss is not None and keeps_weight_copy(sum(p.numel() for p in params), self.rollback):
            self.params = params
            self.good = [p.detach().clone() for p in params]

    def is_bad(self, loss: float) -> bool:
        if not math.isfinite(loss):
            return True
        if len(self.early) < self.window:
            self.early.append(loss)
        return bool(self.factor) and len(self.early) > 1 and loss > self.factor * min(self.early)

    def on_pre_optimizer_step(self, args, state, control, **kw):
        if self.tripped or self.step_loss is None:
            return
        loss = self.step_loss()
        if self.is_bad(loss):
            self.tripped = {"step": state.global_step + 1, "loss": loss, "what": "training loss",
                            "good_step": self.good_step,
                            "restored_step": self.good_step if self.params is not None else None}
            self.restore = self.params is not None
            return
        if self.params is not None:  # the weights that gave this good loss are good: they become the copy
            with torch.no_grad():
                for copy, p in zip(self.good, self.params):
                    copy.copy_(p)
        self.good_step = state.global_step

    def on_optimizer_step(self, args, state, control, **kw):
        if self.restore:  # this step's update ran on the bad weights; replace its result with the good copy
            self._put_back()
            self.restore = False

    def on_step_end(self, args, state, control, **kw):
        if self.tripped:
            return self._stop(control)

    def on_log(self, args, state, control, logs=None, **kw):
        if self.tripped:
            return self._stop(control)
        if logs and "eval_loss" in logs and not math.isfinite(logs["eval_loss"]):
            # evaluated after update t, on weights whose training loss is not known yet: the copy is from before
            if self.params is not None:
                self._put_back()
            self.tripped = {"step": state.global_step, "loss": logs["eval_loss"], "what": "validation loss",
                            "good_step": self.good_step,
                            "restored_step": self.good_step if self.params is not None else None}
            return self._stop(control)

    @torch.no_grad()
    def _put_back(self):
        for p, copy in zip(self.params, self.good):
            p.copy_(copy)

    @staticmethod
    def _stop(control):
        control.should_training_stop = True
        control.should_save = control.should_evaluate = False  # never checkpoint or evaluate blown-up weights
        return control


class LivePlot(LiveFigure, TrainerCallback):
    """The live loss plot as a Trainer callback: when a frame is due, it draws the Trainer's log history so far."""

    def on_log(self, args, state, control, **kw):
        if self.due():
            self.draw(history_rows(state.log_history), f"{self.title} — step {state.global_step}/{state.max_steps}")
