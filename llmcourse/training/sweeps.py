"""Learning-rate experiments: a sweep of short runs from identical weights, and a learning-rate range test.

Labelling rule for a sweep run (train loss; L0 = its first logged loss, the same for every run because
the weights and the first batch are the same; "end" = mean of the last 20% of its losses):
  diverged   the divergence guard stopped it (NaN/inf or a loss explosion), or end > 1.5 x L0: far worse than at
             the start
  unstable   it fell but jumped: some loss after the first step above 1.2 x L0, or end above 1.3 x its best
             smoothed loss (it went down, then back up)
  too slow   its drop (L0 - end) / L0 is under 5%, or under half the best drop among the stable runs
  good       everything else; the suggested learning rate is the good run with the lowest end loss
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from transformers import TrainerCallback

from llmcourse.training.config import TrainConfig
from llmcourse.core.fastmode import capped
from llmcourse.core.hardware import releases_memory
from llmcourse.plots.figures import Comparison, CourseFigure, LiveFigure, figure_png, plot_runs, smooth
from llmcourse.training.runs import round_loss
from llmcourse.training.preparation import prepare_data, prepare_model
from llmcourse.training.trainer import finish, fit, prepare_run, train

LABELS = ("too slow", "good", "unstable", "diverged")


def _end(losses: list[float]) -> float:
    tail = losses[-max(3, len(losses) // 5):]
    return sum(tail) / len(tail)


def label_runs(runs) -> list[str]:
    """too slow / good / unstable / diverged for each run of a sweep (the rule is in this module's docstring)."""
    labels, drops = [], []
    for run in runs:
        losses = [v for _, v in run.losses()]
        if not losses or run.status == "diverged" or not all(map(math.isfinite, losses)) or _end(losses) > 1.5 * losses[0]:
            labels.append("diverged")
            drops.append(None)
            continue
        first, end = losses[0], _end(losses)
        jumped = max(losses[1:], default=first) > 1.2 * first or end > 1.3 * min(smooth(losses, 0.6))
        labels.append("unstable" if jumped else "")
        drops.append((first - end) / first)
    best = max([d for d, lab in zip(drops, labels) if lab == ""], default=0.0)
    return [lab or ("too slow" if d < 0.05 or d < 0.5 * best else "good") for lab, d in zip(labels, drops)]


@dataclass
class Sweep:
    """The runs of a learning-rate sweep, their labels and the suggested learning rate (shown as plot + table)."""
    runs: list
    labels: list
    seconds: float

    @property
    def best_lr(self) -> float | None:
        good = [(_end([v for _, v in r.losses()]), r.config.learning_rate)
                for r, lab in zip(self.runs, self.labels) if lab == "good"]
        return min(good)[1] if good else None

    def table(self):
        import pandas as pd

        rows = []
        for run, label in zip(self.runs, self.labels):
            losses = [v for _, v in run.losses()]
            rows.append({"learning rate": run.config.learning_rate, "label": label,
                         "first loss": round_loss(losses[0]) if losses else None,
                         "end loss": round_loss(_end(losses)) if losses else None,
                         "eval loss": run.summary()["eval loss"], "steps": len(losses)})
        return pd.DataFrame(rows)

    def figure(self, **kw):
        labels = [f"lr {r.config.learning_rate:.0e}: {lab}" for r, lab in zip(self.runs, self.labels)]
        return plot_runs(self.runs, labels=labels, title=f"learning-rate sweep (best: {self.best_lr})", **kw)

    def _repr_html_(self) -> str:
        return Comparison(self.figure(), self.table())._repr_html_()

    def __repr__(self) -> str:
        return f"Sweep (best learning rate {self.best_lr}):\n{self.table().to_string(index=False)}"


class _SweepPlot(TrainerCallback):
    """Redraws all finished sweep runs plus the current one (in place, throttled). HistoryCallback keeps the
    current Run's history live; lr_sweep sets `current` as each run is prepared."""

    def __init__(self, live: LiveFigure, done: list):
        self.live, self.done, self.current = live, done, None

    def on_log(self, args, state, control, **kw):
        if self.live.due() and self.current is not None:
            histories = [r.history for r in self.done] + [self.current.history]
            labels = [f"lr {r.config.learning_rate:.0e}" for r in self.done]
            labels.append(f"lr {self.current.config.learning_rate:.0e} (running)")
            self.live.show_figure(plot_runs(histories, labels=labels, title="learning-rate sweep"))


def _prepared(config: TrainConfig, model, tokenizer, data, verbose: bool):
    model, tokenizer = prepare_model(config, model, tokenizer)
    return model, tokenizer, prepare_data(config, tokenizer, data, verbose=verbose)


def _snapshot(model) -> list:
    """Copies of what training can change: the trainable weights and the buffers. For LoRA that is the adapters,
    not the frozen model (0.54 GB less for the bundled model in fp32)."""
    changing = [p for p in model.parameters() if p.requires_grad] + list(model.buffers())
    return [(t, t.detach().clone()) for t in changing]


def _restore(snapshot: list) -> None:
    with torch.no_grad():
        for tensor, saved in snapshot:
            tensor.copy_(saved)


@releases_memory
def _train_one(config: TrainConfig, on_start, **kw):
    """train(config, **kw) with on_start(run) called between prepare_run and fit; the Trainer's memory goes when it
    returns, as after train()."""
    run = prepare_run(config, **kw)
    on_start(run)
    return finish(fit(run))  # a crash is recorded and saved by fit, then raised


@releases_memory
def lr_sweep(config: TrainConfig, lrs, steps: int = 30, *, model=None, tokenizer=None, data=None,
             plot: bool | None = None, verbose: bool = True, save_model: bool = False, callbacks=(), stop=None,
             on_start=None, on_run=None) -> Sweep:
    """Short runs at each learning rate from exactly the same initial weights (restored after each), overlaid and labelled.

    The runs keep their histories, not models (run.model is None): the weights are reset for every rate.
    save_model=True saves each run's model in its folder (to ask it questions later). callbacks go to every run;
    `stop` (a threading.Event) stops the current run and skips the rest. on_start(run) is called as each run is
    prepared, before it trains: the Run itself, in its folder, recorded as running, its history filled in as it
    trains (the same object the Sweep returns); on_run(run) is called as each run ends.
    """
    steps = capped(steps, 2)  # fast mode (the test suite): 2 steps per rate
    model, tokenizer, data = _prepared(config, model, tokenizer, data, verbose)
    initial = _snapshot(model)
    live = LiveFigure(enabled=plot)
    runs, start = [], time.time()
    drawing = _SweepPlot(live, runs)

    def started(run):
        drawing.current = run
        if on_start is not None:
            on_start(run)

    try:
        for i, lr in enumerate(sorted(lrs)):
            if stop is not None and stop.is_set():
                break
            _restore(initial)
            cfg = config.replace(learning_rate=lr, max_steps=steps, save_model=save_model, save_steps=0,
                                 run_name=None)
            cfg = cfg.replace(run_name=f"sweep-{cfg.name}")
            run = _train_one(cfg, started, model=model, tokenizer=tokenizer, data=data, plot=False,
                             estimate=i == 0, stop=stop, verbose=verbose, callbacks=[drawing, *callbacks])
            run.model = None  # the weights are reset for the next rate, so no run's trained model survives
            runs.append(run)
            if on_run is not None:
                on_run(run)
    finally:
        _restore(initial)  # the caller's model is exactly as it was
    sweep = Sweep(runs, label_runs(runs), time.time() - start)
    live.show_figure(sweep.figure())  # the last frame stays in the saved notebook
    return sweep


class _ExplodeStop(TrainerCallback):
    """Range test stop: smoothed loss above `factor` x its best so far (fastai's rule), or NaN/inf."""

    def __init__(self, factor: float):
        self.factor, self.losses = factor, []

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])
            s = smooth(self.losses, 0.7)
            if not math.isfinite(s[-1]) or s[-1] > self.factor * min(x for x in s if math.isfinite(x)):
                control.should_training_stop = True
        return control


@dataclass
class RangeTest:
    """Loss against an exponentially rising learning rate, with the usual suggestions (and their caveat)."""
    lrs: list
    losses: list

    @property
    def steepest_lr(self) -> float:
        """Where the smoothed loss falls fastest per step of log(lr) (fastai's 'steep' suggestion)."""
        s = smooth(self.losses, 0.7)
        slopes = [(s[i + 1] - s[i - 1], self.lrs[i]) for i in range(1, len(s) - 1)]
        return min(slopes)[1] if slopes else self.lrs[0]

    @property
    def min_loss_lr(self) -> float:
        """The learning rate at the lowest smoothed loss; the classic advice is to divide it by 10."""
        s = smooth(self.losses, 0.7)
        return self.lrs[min(range(len(s)), key=lambda i: s[i])]

    def figure(self):
        fig = CourseFigure(figsize=(7, 3.5))
        ax = fig.subplots()
        ax.plot(self.lrs, self.losses, alpha=0.3, color="C0")
        ax.plot(self.lrs, smooth(self.losses, 0.7), color="C0", lw=2, label="loss (smoothed)")
        ax.axvline(self.steepest_lr, color="C1", ls="--", label=f"steepest {self.steepest_lr:.1e}")
        ax.axvline(self.min_loss_lr / 10, color="C2", ls=":", label=f"min/10 {self.min_loss_lr / 10:.1e}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss", title="learning-rate range test")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return fig

    def _repr_png_(self) -> bytes:
        return figure_png(self.figure())

    def __repr__(self) -> str:
        return (f"RangeTest({len(self.lrs)} steps, lr {self.lrs[0]:.1e} to {self.lrs[-1]:.1e}: steepest fall at "
                f"{self.steepest_lr:.1e}, lowest loss at {self.min_loss_lr:.1e})")


@releases_memory
def lr_range_test(config: TrainConfig, min_lr: float = 1e-7, max_lr: float = 1.0, steps: int = 60, *, model=None,
                  tokenizer=None, data=None, stop_factor: float = 4.0, verbose: bool = True) -> RangeTest:
    """Raise the learning rate exponentially each step until the loss explodes; a model you pass is restored afterwards.

    Caveat: for transformers this tends to suggest rates that are too high for a full run (transformers
    issue #16013 declined an LR finder for this reason). Treat its suggestion as an upper bound and
    check a few values below it with lr_sweep.
    """
    steps = capped(steps, 8)  # fast mode (the test suite): 8 steps
    callers = model is not None  # a model loaded here is thrown away afterwards: no copy needed to restore it
    model, tokenizer, data = _prepared(config, model, tokenizer, data, verbose)
    initial = _snapshot(model) if callers else None
    ratio = max_lr / min_lr
    cfg = config.replace(learning_rate=max_lr, max_steps=steps, lr_scheduler_type="constant", warmup_ratio=0.0,
                         divergence_factor=0.0, save_model=False, save_steps=0, run_name=None)
    cfg = cfg.replace(run_name=f"range-test-{cfg.name}")
    try:
        run = train(cfg, model=model, tokenizer=tokenizer, data={"train": data["train"]}, plot=False, verbose=verbose,
                    lr_lambda=lambda s: ratio ** (min(s, steps - 1) / (steps - 1) - 1),
                    callbacks=[_ExplodeStop(stop_factor)])
    finally:
        if initial is not None:
            _restore(initial)
    rows = [r for r in run.history if r.get("loss") is not None]
    return RangeTest([r["learning_rate"] for r in rows], [r["loss"] for r in rows])
