"""Loss plots from plain histories (lists of dicts): live while training (updated in place), one run, runs side by side.

Figures are plain matplotlib `Figure`s (never pyplot), so they can be drawn from a training thread and
show exactly once in a notebook when a function returns one. The live plot uses a display handle:
it is updated in place and its last frame stays in the saved notebook as a PNG.
"""
from __future__ import annotations

import base64
import io
import math
import time

from matplotlib.figure import Figure

X_LABELS = {"step": "optimizer step", "epoch": "epoch", "tokens": "tokens seen"}


class CourseFigure(Figure):
    """A matplotlib Figure that a notebook shows as PNG when a cell returns it (no pyplot needed)."""

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (live plots and widgets make sense there, not in scripts or the CLI)."""
    try:
        from IPython import get_ipython

        return get_ipython() is not None and hasattr(get_ipython(), "kernel")
    except ImportError:
        return False


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with TensorBoard's start-up correction (no dip towards 0 at the start)."""
    out, avg, n = [], 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(v)
            continue
        n += 1
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** n) if weight else v)
    return out


def figure_png(fig: Figure, dpi: int = 90, tight: bool = True) -> bytes:
    """The figure as PNG bytes. tight=False keeps the figure's own size (figsize x dpi pixels): a picture shown
    again and again at the same place (the panel's schedule preview) then never changes size."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    return buf.getvalue()


def _series(history: list[dict], key: str, x: str) -> tuple[list, list]:
    rows = [r for r in history if r.get(key) is not None and r.get(x) is not None]
    return [r[x] for r in rows], [r[key] for r in rows]


SMOOTHING = 0.9  # the bold training curve's smoothing weight, in the plots and the panel's table alike
CURVES = {"raw": "train loss, each step", "smoothed": "train loss, smoothed", "eval": "validation loss"}


def _style(kind: str, few: bool, alpha: float = 1.0) -> dict:
    """How each of the three curves of a run is drawn (the overlay's legend shows the same styles in grey)."""
    return {"raw": dict(alpha=0.25 * alpha, lw=1, marker="." if few else None),
            "smoothed": dict(alpha=alpha, lw=2, marker="o" if few else None, ms=3),
            "eval": dict(alpha=alpha, ls="--", marker="s", ms=5)}[kind]


def draw_losses(ax, history: list[dict], *, label: str = "", color=None, x: str = "step",
                smoothing: float = SMOOTHING, raw: bool = True, eval_: bool = True, alpha: float = 1.0):
    """Train loss (faint raw + bold smoothed) and validation loss (dashed squares) of one history on `ax`;
    each curve is labelled "<label> <what>" with what from CURVES."""
    xs, ys = _series(history, "loss", x)
    few = len(xs) < 30  # few points: show markers so a short run never looks empty
    named = lambda kind: f"{label} {CURVES[kind]}".strip()
    if raw and xs:
        (line,) = ax.plot(xs, ys, color=color, label=named("raw"), **_style("raw", few, alpha))
        color = line.get_color()
    if xs:
        (line,) = ax.plot(xs, smooth(ys, smoothing), color=color, label=named("smoothed"),
                          **_style("smoothed", few, alpha))
        color = line.get_color()
    ex, ey = _series(history, "eval_loss", x)
    if eval_ and ex:
        ax.plot(ex, ey, color=color, label=named("eval"), **_style("eval", len(ex) < 30, alpha))
    return color


def plot_history(run, *, x: str = "step", smoothing: float = SMOOTHING, log_scale: bool = False, title: str | None = None,
                 save=None, history: list | None = None) -> Figure:
    """Loss (train raw + smoothed, eval) and the learning rate of one run; `save` writes a PNG."""
    history = run.history if history is None else history
    fig = CourseFigure(figsize=(10, 3.6))
    ax, ax_lr = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    draw_losses(ax, history, x=x, smoothing=smoothing)
    ax.set(xlabel=X_LABELS[x], ylabel="loss (cross-entropy)", yscale="log" if log_scale else "linear")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="upper right")
    lx, ly = _series(history, "learning_rate", x)
    ax_lr.plot(lx, ly, color="tab:green", marker="." if len(lx) < 30 else None)
    ax_lr.set(xlabel=X_LABELS[x], ylabel="learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax_lr.grid(alpha=0.3)
    if title is None and run is not None:
        title = f"{run.name} — {run.status}" + (f", {run.seconds / 60:.1f} min" if run.seconds else "")
    fig.suptitle(title or "")
    if save:
        fig.savefig(save, dpi=90, bbox_inches="tight")
    return fig


class LiveFigure:
    """Redraws the loss plot in place while training; silent outside notebooks (the Trainer's adapter is
    training.callbacks.LivePlot).

    A frame comes at most every `every` seconds, and no sooner than DRAW_SHARE allows: showing a frame (mostly
    rendering the PNG) takes about 0.3 s on 2 CPU cores and training waits meanwhile, so with DRAW_SHARE = 0.05
    the gap is at least 20 times the last frame's cost (about 6 s there).
    show: where frames go; default a notebook display handle. A function receiving PNG bytes also works
    (the widgets send frames to their own output area that way). clock: seconds, for the throttle (tests fake it).
    """

    DRAW_SHARE = 0.05  # at most this share of the wall time goes to drawing

    def __init__(self, title: str = "", enabled: bool | None = None, every: float = 2.0, show=None,
                 clock=time.monotonic):
        self.title, self.every, self.show, self.clock = title, every, show, clock
        self.enabled = (show is not None or in_notebook()) if enabled is None else enabled
        self.handle, self.last = None, -math.inf  # the first frame is due at once, whatever the clock reads
        self.cost = 0.0  # seconds the last frame took to show

    def due(self) -> bool:
        """True when enabled and the last frame is old enough (`every`, and DRAW_SHARE of the time since)."""
        return self.enabled and self.clock() - self.last >= max(self.every, self.cost / self.DRAW_SHARE)

    def show_figure(self, fig: Figure) -> None:
        """Replace the frame on screen with `fig` (nothing happens when disabled)."""
        if not self.enabled:
            return
        start = self.clock()
        png = figure_png(fig)
        if self.show is not None:
            self.show(png)
        else:
            from IPython.display import Image, display

            if self.handle is None:
                self.handle = display(Image(data=png, format="png"), display_id=True)
            else:
                self.handle.update(Image(data=png, format="png"))
        self.last = self.clock()
        self.cost = self.last - start

    def draw(self, history: list[dict], title: str) -> None:
        self.show_figure(plot_history(None, history=history, title=title))

    def finish(self, run) -> None:
        """The final frame: the whole history, titled with the outcome (it stays in the saved notebook)."""
        self.draw(run.history, f"{run.name} — {run.status}, {run.seconds / 60:.1f} min")


class Comparison:
    """A figure and a table shown together in a notebook (returned by compare_runs)."""

    def __init__(self, figure: Figure, table):
        self.figure, self.table = figure, table

    def _repr_html_(self) -> str:
        png = base64.b64encode(figure_png(self.figure)).decode()
        return f'<img src="data:image/png;base64,{png}"/>' + self.table.to_html(index=False, na_rep="–")

    def __repr__(self) -> str:
        return self.table.to_string(index=False)


def run_color(i: int) -> str:
    """The colour of the i-th run in overlays and tables ('#1f77b4', ...: matplotlib's C0, C1, ...)."""
    from matplotlib.colors import to_hex

    return to_hex(f"C{i % 10}")


def plot_runs(runs, *, labels=None, colors=None, x: str = "step", smoothing: float = SMOOTHING,
              log_scale: bool = False, eval_: bool = True, title: str = "") -> Figure:
    """Several runs' loss curves on one axis (raw faint, smoothed bold, validation dashed); runs or history lists.

    The legend sits outside the axes, right of them, so it never covers a curve: one entry per run (its colour),
    then the three line styles in grey (which curve is which). colors: one per run (default run_color(0),
    run_color(1), ...), so a table beside it can use the same ones."""
    from matplotlib.lines import Line2D

    fig = CourseFigure(figsize=(10, 4))
    ax = fig.subplots()
    raw = len(runs) <= 4
    handles, drawn = [], set()
    for i, run in enumerate(runs):
        label = labels[i] if labels else run.name
        history = getattr(run, "history", run)
        color = draw_losses(ax, history, label=label, color=colors[i] if colors else run_color(i),
                            x=x, smoothing=smoothing, eval_=eval_, raw=raw)
        handles.append(Line2D([], [], color=color, lw=4, label=label))
        drawn.update(k for k, key in (("raw", "loss"), ("smoothed", "loss"), ("eval", "eval_loss"))
                     if any(r.get(key) is not None for r in history) and (k != "raw" or raw) and (k != "eval" or eval_))
    ax.set(xlabel=X_LABELS[x], ylabel="loss", yscale="log" if log_scale else "linear", title=title)
    ax.grid(alpha=0.3)
    handles += [Line2D([], [], color="grey", label=CURVES[k], **_style(k, True)) for k in CURVES if k in drawn]
    if ax.lines:
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def plot_learning_curve(table, ax=None) -> Figure:
    """Validation loss against training rows (a table with `rows` and `validation loss`; log scale: each point
    doubles the data)."""
    ax = ax or CourseFigure(figsize=(6, 3.5)).subplots()
    ax.plot(table["rows"], table["validation loss"], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(table["rows"]), [str(n) for n in table["rows"]])
    ax.set_xlabel("training rows (the same epochs each)")
    ax.set_ylabel("validation loss")
    ax.set_title("learning curve")
    return ax.figure
