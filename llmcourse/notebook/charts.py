"""Charts that need the course's training objects: a learning-rate schedule preview, saved runs compared."""
from __future__ import annotations

from matplotlib.figure import Figure

from llmcourse.core.errors import CourseError
from llmcourse.plots.figures import X_LABELS, Comparison, CourseFigure, plot_runs
from llmcourse.training.runs import list_runs, load_run, runs_table
from llmcourse.training.schedules import lr_schedule


def plot_schedule(config, num_steps: int, *, schedulers=None, ax=None) -> Figure:
    """The learning rate at every step for `config` (or for each name in `schedulers`, same other settings)."""
    fig = None
    if ax is None:
        fig = CourseFigure(figsize=(6, 3))
        ax = fig.subplots()
    for name in schedulers or [config.lr_scheduler_type]:
        lrs = lr_schedule(config.replace(lr_scheduler_type=name), num_steps)
        ax.plot(range(1, num_steps + 1), lrs, label=name, marker="." if num_steps < 30 else None)  # as runs count
    ax.set(xlabel="optimizer step", ylabel="learning rate",
           title=f"peak {config.learning_rate:g}, warmup {config.warmup_ratio:g}, {num_steps} steps")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig or ax.figure


def compare_runs(*runs, x: str = "step", log_scale: bool = False, smoothing: float = 0.9, eval_: bool = True):
    """Overlay saved runs (Run objects or names; none = every run in runs/) with a table of their results."""
    if x not in X_LABELS:
        raise CourseError(f"x={x!r}: use 'step', 'epoch' or 'tokens'.")
    chosen = [r if hasattr(r, "history") else load_run(r) for r in runs] or list_runs()
    fig = plot_runs(chosen, x=x, smoothing=smoothing, log_scale=log_scale, eval_=eval_, title="runs compared")
    return Comparison(fig, runs_table(chosen))
