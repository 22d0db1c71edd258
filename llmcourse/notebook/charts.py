"""Charts that need the course's training objects: a learning-rate schedule preview, saved runs compared."""
from __future__ import annotations

from matplotlib.figure import Figure

from llmcourse.core.errors import CourseError
from llmcourse.plots.figures import X_LABELS, Comparison, CourseFigure, plot_runs
from llmcourse.training.runs import list_runs, load_run, runs_table
from llmcourse.training.schedules import lr_schedule


PREVIEW_SIZE = (4.4, 2.4)  # inches: the panel's schedule preview (at PREVIEW_DPI; shown at half that, crisp)
PREVIEW_DPI = 200


def _draw_schedule(ax, config, name: str, num_steps: int, color=None) -> None:
    lrs = lr_schedule(config.replace(lr_scheduler_type=name), num_steps)
    ax.plot(range(1, num_steps + 1), lrs, label=name, color=color,
            marker="." if num_steps < 30 else None)  # as runs count
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.grid(alpha=0.3)


def plot_schedule(config, num_steps: int, *, schedulers=None, ax=None, columns: int = 3) -> Figure:
    """The learning rate at every step for `config`, or for each name in `schedulers` (same other settings).

    One schedule: one axes, the size of the panel's preview (PREVIEW_SIZE). Several: small multiples, one axes
    per schedule (titled with its name, `columns` per row, same axis ranges), unless `ax` is given: then they
    are overlaid there with a legend."""
    names = list(schedulers or [config.lr_scheduler_type])
    settings = f"peak {config.learning_rate:g}, warmup {config.warmup_ratio:g}, {num_steps} steps"
    if ax is not None or len(names) == 1:
        fig = None
        if ax is None:
            fig = CourseFigure(figsize=PREVIEW_SIZE, layout="constrained")
            ax = fig.subplots()
        for name in names:
            _draw_schedule(ax, config, name, num_steps)
        ax.set(xlabel="optimizer step", ylabel="learning rate", title=f"{names[0]}: {settings}"
               if len(names) == 1 else settings)
        ax.title.set_fontsize(9)
        if len(names) > 1:
            ax.legend(fontsize=8)
        return fig or ax.figure
    cols = min(columns, len(names))
    rows = -(-len(names) // cols)
    fig = CourseFigure(figsize=(3.3 * cols, 2.3 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    for i, (a, name) in enumerate(zip(axes, names)):
        _draw_schedule(a, config, name, num_steps, color=f"C{i % 10}")
        a.set_title(name, fontsize=10)
    for a in axes[len(names):]:
        a.remove()
    for i, a in enumerate(axes[:len(names)]):
        if i + cols >= len(names):  # the lowest axes of its column
            a.set_xlabel("optimizer step")
            a.xaxis.set_tick_params(labelbottom=True)
        if i % cols == 0:
            a.set_ylabel("learning rate")
    fig.suptitle(settings)
    return fig


def compare_runs(*runs, x: str = "step", log_scale: bool = False, smoothing: float = 0.9, eval_: bool = True):
    """Overlay saved runs (Run objects or names; none = every run in runs/) with a table of their results."""
    if x not in X_LABELS:
        raise CourseError(f"x={x!r}: use 'step', 'epoch' or 'tokens'.")
    chosen = [r if hasattr(r, "history") else load_run(r) for r in runs] or list_runs()
    fig = plot_runs(chosen, x=x, smoothing=smoothing, log_scale=log_scale, eval_=eval_, title="runs compared")
    return Comparison(fig, runs_table(chosen))
