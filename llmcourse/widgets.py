"""Hyperparameter widgets for the training notebook: sliders that are a TrainConfig, a schedule preview, Train/Stop.

This is the only module that imports ipywidgets. Training started by the Train button runs in a background
thread, so the kernel stays free to receive the Stop click; the loss plot and progress are widgets updated
from that thread.
"""
from __future__ import annotations

import functools
import threading
import time

import ipywidgets as W
from transformers import TrainerCallback

from .config import PRECISIONS, SCHEDULERS, TrainConfig, field_help
from .errors import CourseError
from .plotting import LivePlot, figure_png, plot_schedule

LAYOUT = {"width": "420px"}
READY = "Set the hyperparameters, then press Train."
ERROR_STYLE = "<span style='color:#b00'>"
STYLE = {"description_width": "150px"}


def _make(name: str, value):
    """The widget for one TrainConfig field, labelled with its name and its help text as tooltip."""
    common = dict(description=name.replace("per_device_train_", "").replace("_", " "), tooltip=field_help(name),
                  layout=W.Layout(**LAYOUT), style=STYLE)
    if name == "learning_rate":
        return W.FloatLogSlider(value=value, base=10, min=-6, max=-2, step=0.1, readout_format=".1e", **common)
    if name == "lr_scheduler_type":
        return W.Dropdown(options=SCHEDULERS, value=value, **common)
    if name == "precision":
        return W.Dropdown(options=PRECISIONS, value=value, **common)
    if name == "warmup_ratio":
        return W.FloatSlider(value=value, min=0, max=0.5, step=0.01, **common)
    if name == "num_train_epochs":
        return W.FloatSlider(value=value, min=0.25, max=10, step=0.25, **common)
    if name == "max_steps":
        return W.BoundedIntText(value=value, min=-1, max=100_000, **common)
    if name == "per_device_train_batch_size":
        return W.Dropdown(options=sorted({1, 2, 4, 8, 16, 32, 64, value}), value=value, **common)
    if name == "gradient_accumulation_steps":
        return W.IntSlider(value=value, min=1, max=32, **common)
    if name == "lora_r":
        return W.Dropdown(options=sorted({4, 8, 16, 32, 64, 128, value}), value=value, **common)
    if name == "lora":
        return W.Checkbox(value=value, indent=False, **common)
    raise KeyError(name)


FIELDS = ("learning_rate", "lr_scheduler_type", "warmup_ratio", "num_train_epochs", "max_steps",
          "per_device_train_batch_size", "gradient_accumulation_steps", "lora", "lora_r", "precision")


def config_widgets(config: TrainConfig) -> dict:
    """One widget per hyperparameter, set to `config`'s values."""
    return {name: _make(name, getattr(config, name)) for name in FIELDS}


def config_from_widgets(controls: dict, base: TrainConfig) -> TrainConfig:
    """`base` with the widgets' current values (checked like any TrainConfig)."""
    return base.replace(**{name: w.value for name, w in controls.items()})


class _PanelProgress(TrainerCallback):
    """Moves the panel's progress bar and status line (from the training thread)."""

    def __init__(self, panel: "TrainingPanel"):
        self.panel = panel

    def on_train_begin(self, args, state, control, **kw):
        self.t0, self.step0 = time.monotonic(), state.global_step
        self.panel.progress.max, self.panel.progress.value = state.max_steps, state.global_step

    def on_log(self, args, state, control, logs=None, **kw):
        p = self.panel
        p.progress.value = state.global_step
        done = state.global_step - self.step0
        if logs and "loss" in logs and done:
            eta = (time.monotonic() - self.t0) / done * (state.max_steps - state.global_step)
            p.status.value = (f"step {state.global_step}/{state.max_steps} · loss {logs['loss']:.3f} · "
                              f"lr {logs['learning_rate']:.1e} · about {eta / 60:.1f} min left")


class TrainingPanel:
    """Sliders for the hyperparameters, a live learning-rate preview, Train and Stop buttons, a live loss plot.

    `panel.run` is the last run. `panel.result()` returns it, and when nobody pressed Train (a headless run
    of the notebook) it trains once with the current values, in the foreground.
    """

    def __init__(self, config: TrainConfig | None = None, *, data=None, train_rows: int | None = None):
        self.base = config or TrainConfig.laptop()
        self.data = data
        self.train_rows = train_rows or self._count_rows()
        self.controls = config_widgets(self.base)
        self.preview = W.Image(format="png", layout=W.Layout(width="440px"))
        self.plot = W.Image(format="png", layout=W.Layout(width="760px"))
        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="420px"))
        self.status = W.HTML(READY)
        self.stop_flag = threading.Event()
        self.thread: threading.Thread | None = None
        self.run = None
        self.error: Exception | None = None
        for w in self.controls.values():
            w.observe(lambda change: self.update_preview(), names="value")
        self.train_button.on_click(lambda b: self.start())
        self.stop_button.on_click(lambda b: self.stop())
        self.update_preview()

    def _count_rows(self) -> int:
        if self.data is not None and "train" in self.data:
            n = len(self.data["train"])
        else:
            from .data import load_instruction_data

            n = len(load_instruction_data(self.base.data, split="train", verbose=False))
        return min(n, self.base.max_train_samples or n)

    def config(self) -> TrainConfig:
        """The TrainConfig the widgets describe right now."""
        return config_from_widgets(self.controls, self.base)

    def num_steps(self) -> int:
        from .schedules import count_steps

        return count_steps(self.config(), self.train_rows)

    def update_preview(self) -> None:
        """Redraw the learning-rate schedule for the current values (it is what Trainer will apply)."""
        try:
            cfg = self.config()
        except CourseError as e:
            self.status.value = f"{ERROR_STYLE}{e}</span>"
            return
        self.preview.value = figure_png(plot_schedule(cfg, self.num_steps()))
        if self.status.value.startswith(ERROR_STYLE):  # the value that was wrong has been corrected
            self.status.value = READY

    def start(self) -> None:
        """Train with the current values in a background thread (what the Train button does)."""
        if self.thread is not None and self.thread.is_alive():
            return
        self.stop_flag.clear()
        self.error = None
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "starting: loading the model and data ..."
        self.thread = threading.Thread(target=self._train, args=(self.config(),), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Ask the running training to stop after its current step (what the Stop button does)."""
        self.stop_flag.set()
        self.status.value = "stopping after the current step (a checkpoint is saved) ..."

    def _train(self, cfg: TrainConfig) -> None:
        from .train import train

        def show(png: bytes) -> None:
            self.plot.value = png

        try:
            self.run = train(cfg, data=self.data, stop=self.stop_flag, verbose=False, plot=False,
                             callbacks=[_PanelProgress(self), LivePlot(cfg.name, enabled=True, show=show)])
            r = self.run
            self.status.value = (f"<b>{r.status}</b> after {r.history[-1]['step'] if r.history else 0} steps, "
                                 f"{r.seconds / 60:.1f} min. Saved in {r.path}. {r.message}")
            show(figure_png(r.plot()))
        except Exception as e:  # shown in the panel: a thread has nowhere else to report
            self.error = e
            self.status.value = f"{ERROR_STYLE}{type(e).__name__}: {e}</span>"
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True

    def wait(self, timeout: float | None = None):
        """Block until the button-started run ends; returns it."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.run

    def result(self):
        """The last run; when none was started, train now with the current values (headless notebooks)."""
        if self.thread is not None:
            return self.wait()
        if self.run is None:
            from .train import train

            self.run = train(self.config(), data=self.data, stop=self.stop_flag)
        return self.run

    @functools.cached_property
    def widget(self) -> W.Widget:
        c = self.controls
        left = W.VBox([c[n] for n in FIELDS] + [W.HBox([self.train_button, self.stop_button]), self.progress,
                                                self.status])
        return W.VBox([W.HBox([left, self.preview]), self.plot])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def training_panel(config: TrainConfig | None = None, **kw) -> TrainingPanel:
    """The notebook's hyperparameter panel (see TrainingPanel)."""
    return TrainingPanel(config, **kw)
