"""Hyperparameter widgets for the training notebook: sliders that are a TrainConfig, a schedule preview, and a
panel that remembers its runs (overlaid loss curves, a table, a learning-rate sweep, their answers side by side).

This is the only module that imports ipywidgets. What a button starts (training, a sweep, resuming, answering)
runs in a background thread, so the kernel stays free to receive the Stop click; the plot, the run list and the
progress are widgets updated from that thread.
"""
from __future__ import annotations

import functools
import html
import threading

import ipywidgets as W
from transformers import TrainerCallback

from llmcourse.training.callbacks import StepTimer
from llmcourse.training.config import PRECISIONS, SCHEDULERS, TrainConfig, field_help
from llmcourse.core.errors import CourseError
from llmcourse.notebook.charts import PREVIEW_DPI, PREVIEW_SIZE, plot_schedule
from llmcourse.plots.figures import SMOOTHING, LiveFigure, figure_png, plot_runs, run_color, smooth
from llmcourse.training.runs import Run, round_loss, run_model
from llmcourse.data.loading import load_instruction_data
from llmcourse.training.schedules import count_steps
from llmcourse.training.placement import resolve_precision
from llmcourse.core.hardware import releases_memory
from llmcourse.models.loading import pick_device
from llmcourse.training.trainer import finish, fit, prepare_run
from llmcourse.training.sweeps import lr_sweep
from llmcourse.models.generation import generate

LAYOUT = {"width": "420px"}
READY = "Set the hyperparameters, then press Train."
ERROR_STYLE = "<span style='color:#b00'>"
STYLE = {"description_width": "150px"}
PLACE = "<div style='width:740px;padding:40px 0;text-align:center;color:#777;border:1px dashed #bbb'>{}</div>"
PLACEHOLDER = PLACE.format("No run yet. Press <b>Train</b>: the loss curves of your runs will appear here, one colour "
                           "per run.")
STARTING = PLACE.format("⏳ Starting the first run: loading the model and the data (several seconds), then its "
                        "loss curve appears here.")
ASKING = "<i style='color:#777'>⏳ {}</i>"
STOPPING = "stopping after this step…"
NO_RESUME = "Resume continues a stopped run (Stop saves a checkpoint); there is none in the list."
MAX_NEW_TOKENS = 48  # one or two sentences: a Kettlebird answer is one
COLUMNS = (("#", 40), ("learning rate", 110), ("train loss, smoothed", 150), ("last step", 80),
           ("validation loss", 120), ("steps", 50), ("time", 60), ("status", 170),
           ("run", 330))  # the run table's columns and their widths in pixels


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



def dead_controls(config: TrainConfig) -> dict:
    """The controls that do nothing for `config`, each with the reason its tooltip gives."""
    dead = {}
    if config.max_steps > 0:
        dead["num_train_epochs"] = (f"Not used: max_steps={config.max_steps} sets the length of the run. "
                                    "Set max steps to -1 to train by epochs.")
    if not config.lora:
        dead["lora_r"] = "Not used: LoRA is off. Tick lora to train adapters of this rank."
    return dead


def bf16_warning(config: TrainConfig, native: bool) -> str:
    """The panel's warning line when `config` asks for bf16 where it is only emulated (native=False), else ''."""
    if config.precision != "bf16" or native:
        return ""
    return ("<span style='color:#a60'>⚠ bf16 is emulated on this CPU (no native bfloat16): training runs several "
            "times slower than in fp32 (8–10x on the course's test machine). Choose auto or fp32.</span>")


def sweep_rates(learning_rate: float) -> list:
    """The 3 learning rates the panel's sweep tries: a third of the current one, the current one, three times it."""
    return [learning_rate / 3, learning_rate, learning_rate * 3]


def panel_questions(n: int = 3) -> list:
    """The first n questions of the shipped data's test split (trained facts in new words), with references."""
    test = load_instruction_data("kettlebird", split="test", verbose=False)
    return [{"question": r["prompt"], "reference": r["completion"]} for r in test.select(range(n))]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class PanelRun:
    """One line of the panel's run list: number, colour, checkbox, and the Run, live while it trains (HistoryCallback
    fills in its history). Until prepare_run returns it there is no Run: the line shows the config it will train
    and `waiting` ("queued", "starting"; "not run" or "crashed" when it never got one)."""

    def __init__(self, number: int, config: TrainConfig, sweep: bool = False):
        self.number, self.config, self.sweep, self.label_note = number, config, sweep, ""
        self.run: Run | None = None
        self.waiting: str | None = "queued"  # None once the Run it trains is attached
        self.checkbox = W.Checkbox(value=True, indent=False, layout=W.Layout(width="24px"),
                                   tooltip="Show this run in the plot and ask it the questions")
        self.cells = W.HTML()
        self.line = W.HBox([self.checkbox, self.cells])
        self.update()

    def attach(self, run: Run) -> None:
        """prepare_run returned the Run this line trains: from now on the line shows it."""
        self.run, self.config, self.waiting = run, run.config, None
        self.update()

    def set_waiting(self, waiting: str | None) -> None:
        """The line's status while it has no Run to train yet (a resumed line shows its stopped Run meanwhile); None:
        its Run's own status again."""
        self.waiting = waiting
        self.update()

    @property
    def status(self) -> str:
        return self.waiting or self.run.status

    @property
    def color(self) -> str:
        return run_color(self.number - 1)

    @property
    def label(self) -> str:
        """How the plot's legend and the answers' header name this run: its number and learning rate."""
        return f"#{self.number} lr {self.config.learning_rate:.1e}"

    @property
    def ended(self) -> bool:
        """True once its Run ended (not while queued, starting or running, nor when it crashed or never ran)."""
        return self.status in ("finished", "stopped", "diverged", "interrupted")

    def row(self) -> dict:
        """This run's line in the table: the end of the bold (smoothed) training curve and the last step's loss,
        the last validation loss, steps, time, status."""
        r = self.run
        status = self.status + (" (sweep)" if self.sweep else "") + (f": {self.label_note}" if self.label_note else "")
        history, seconds, last_eval = (r.history, r.seconds, r.final_eval_loss) if r else ([], 0.0, None)
        losses = [v for _, v in r.losses()] if r else []
        return {"#": self.number, "learning rate": f"{self.config.learning_rate:.1e}",
                "train loss, smoothed": round_loss(smooth(losses, SMOOTHING)[-1]) if losses else None,
                "last step": round_loss(losses[-1]) if losses else None, "validation loss": round_loss(last_eval),
                "steps": history[-1]["step"] if history else 0,
                "time": _duration(seconds), "status": status, "run": r.name if self.ended else ""}

    def update(self) -> None:
        """Redraw this run's line of the table."""
        row = self.row()
        cells = ["–" if v is None else html.escape(str(v)) for v in row.values()]
        cells[:2] = [f"<b style='color:{self.color}'>■ {row['#']}</b>",
                     f"<b style='color:{self.color}'>{row['learning rate']}</b>"]  # the plot's colour
        self.cells.value = _table_line(cells)


def _table_line(cells) -> str:
    return "<div style='display:flex;white-space:nowrap'>" + "".join(
        f"<span data-col='{name}' style='width:{w}px;flex:none'>{c}</span>"
        for c, (name, w) in zip(cells, COLUMNS)) + "</div>"


def answers_html(questions: list, runs: list, answers: dict) -> str:
    """The answers of several panel runs side by side: one row per question, one column per run (in its colour)."""
    cell = "style='vertical-align:top;text-align:left;padding:4px 10px;border-top:1px solid #ddd'"
    head = "".join(f"<th {cell[:-1]};color:{r.color}'>{html.escape(r.label)}</th>" for r in runs)
    rows = "".join(
        f"<tr><td {cell}>{html.escape(q['question'])}</td><td {cell}><i>{html.escape(q.get('reference', ''))}</i></td>"
        + "".join(f"<td {cell} data-run='{r.number}'>{html.escape(answers[r.number][i]) or '(empty answer)'}</td>"
                  for r in runs) + "</tr>"
        for i, q in enumerate(questions))
    return (f"<table class='llmcourse-answers' style='border-collapse:collapse'><tr><th {cell}>question</th>"
            f"<th {cell}>reference</th>{head}</tr>{rows}</table>")


class _PanelProgress(TrainerCallback):
    """Moves the panel's progress bar and status line (from the training thread); the time left leaves out the
    first step's warm-up, as the notebook's progress bar does (StepTimer)."""

    def __init__(self, panel: "TrainingPanel"):
        self.panel = panel

    def on_train_begin(self, args, state, control, **kw):
        self.timer = StepTimer()
        self.panel.progress.max, self.panel.progress.value = state.max_steps, state.global_step

    def on_step_end(self, args, state, control, **kw):
        self.timer.step(state.global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        p = self.panel
        p.progress.value = state.global_step
        if logs and "loss" in logs and not p.stop_flag.is_set():  # "stopping ..." stays until it stopped
            left = self.timer.remaining(state.max_steps)
            eta = "warming up" if left is None else f"about {left / 60:.1f} min left"
            p.status.value = (f"step {state.global_step}/{state.max_steps} · loss {logs['loss']:.3f} · "
                              f"lr {logs['learning_rate']:.1e} · {eta}")


class _PanelRedraw(TrainerCallback):
    """Redraws the line of the run being trained and, when a frame is due, the plot. Nothing to copy: the line holds
    the Run itself, whose history HistoryCallback (the Trainer's first callback) keeps up to date."""

    def __init__(self, panel: "TrainingPanel"):
        self.panel = panel

    def on_train_begin(self, args, state, control, **kw):
        self.on_log(args, state, control)

    def on_log(self, args, state, control, **kw):
        for entry in self.panel.entries:
            if entry.status == "running":
                entry.update()
        if self.panel.live.due():
            self.panel.draw()


class TrainingPanel:
    """Sliders for the hyperparameters, a live learning-rate preview, and a list of every run started here.

    Train, Stop and Resume act on one run; "Sweep 3 learning rates" adds three short runs around the current
    learning rate (lr_sweep); the plot overlays the checked runs and "Ask 3 questions" shows their answers side by
    side. The newest run keeps its model in memory; older ones (run.model is then None) answer from their folders.
    `panel.run` is the last run. `panel.result()` returns it, and when nobody pressed Train (a headless run
    of the notebook) it trains once with the current values, in the foreground.
    bf16_native: whether bf16 is fast on the training device (None: whether precision='auto' picks bf16 there).
    questions: [{"question", "reference"}] to ask (default: the first 3 of the shipped data's test split).
    """

    def __init__(self, config: TrainConfig | None = None, *, data=None, train_rows: int | None = None,
                 bf16_native: bool | None = None, questions: list | None = None):
        self.base = config or TrainConfig.laptop()
        self.data = data
        self.train_rows = train_rows or self._count_rows()
        self.bf16_native, self.questions = bf16_native, questions
        self.controls = config_widgets(self.base)
        self.preview = W.Image(format="png", layout=W.Layout(  # the PNG's own size at half scale: crisp, fixed
            width=f"{PREVIEW_SIZE[0] * PREVIEW_DPI // 2:.0f}px", height=f"{PREVIEW_SIZE[1] * PREVIEW_DPI // 2:.0f}px"))
        self.plot = W.Image(format="png", layout=W.Layout(width="880px"))  # about its own size
        self.plot.add_class("llmcourse-loss-plot")
        self.plot_area = W.Box([W.HTML(PLACEHOLDER)])  # an empty Image would show a broken-image icon
        self.live = LiveFigure(enabled=True, show=self._show_png)
        button = dict(layout=W.Layout(width="136px"))
        self.train_button = W.Button(description="Train", button_style="success", icon="play", **button)
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True, **button)
        self.resume_button = W.Button(description="Resume", icon="forward", disabled=True, tooltip=NO_RESUME, **button)
        self.sweep_button = W.Button(description="Sweep 3 learning rates", icon="sliders", layout=W.Layout(width="420px"),
                                     tooltip="Three short runs from the same starting weights, at a third of, at and "
                                             "at three times the current learning rate, added to the list below")
        self.ask_button = W.Button(description="Ask 3 questions", icon="comments", disabled=True,
                                   layout=W.Layout(width="200px"),
                                   tooltip="Every checked run answers the same 3 held-out questions, side by side")
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="420px"))
        self.status = W.HTML(READY)
        self.warning = W.HTML()
        self.table = W.VBox([W.HTML(_table_line(f"<b>{name}</b>" for name, _ in COLUMNS))],
                            layout=W.Layout(margin="0 0 0 28px"))  # the header sits above the cells, past the boxes
        self.table.add_class("llmcourse-runs")  # for the browser test, as the plot's class
        self.answers = W.HTML()
        self.entries: list[PanelRun] = []
        self.stop_flag = threading.Event()
        self.thread: threading.Thread | None = None
        self.run = None
        self.error: Exception | None = None
        for w in self.controls.values():
            w.observe(lambda change: self.update_preview(), names="value")
        self.train_button.on_click(lambda b: self.start())
        self.stop_button.on_click(lambda b: self.stop())
        self.resume_button.on_click(lambda b: self.resume())
        self.sweep_button.on_click(lambda b: self.sweep())
        self.ask_button.on_click(lambda b: self.ask())
        self.update_preview()

    def _count_rows(self) -> int:
        if self.data is not None and "train" in self.data:
            n = len(self.data["train"])
        else:
            n = len(load_instruction_data(self.base.data, split="train", verbose=False))
        return min(n, self.base.max_train_samples or n)

    def config(self) -> TrainConfig:
        """The TrainConfig the widgets describe right now."""
        return config_from_widgets(self.controls, self.base)

    def num_steps(self) -> int:
        return count_steps(self.config(), self.train_rows)

    @property
    def runs(self) -> list:
        """Every Run in the list, oldest first, the one training included (a queued line has no Run yet)."""
        return [e.run for e in self.entries if e.run is not None]

    def _native_bf16(self, config: TrainConfig) -> bool:
        if self.bf16_native is None:
            device = pick_device(config.device)  # MPS: no warning, as before
            self.bf16_native = device.type == "mps" or resolve_precision("auto", device) == "bf16"
        return self.bf16_native

    def update_preview(self) -> None:
        """Redraw the learning-rate schedule for the current values (it is what Trainer will apply); grey out
        the controls that do nothing, and warn about emulated bf16."""
        try:
            cfg = self.config()
        except CourseError as e:
            self.status.value = f"{ERROR_STYLE}{e}</span>"
            return
        dead = dead_controls(cfg)
        for name in ("num_train_epochs", "lora_r"):
            self.controls[name].disabled = name in dead
            self.controls[name].tooltip = dead.get(name, field_help(name))
        self.warning.value = bf16_warning(cfg, cfg.precision != "bf16" or self._native_bf16(cfg))
        self.preview.value = figure_png(plot_schedule(cfg, self.num_steps()), dpi=PREVIEW_DPI, tight=False)
        if self.status.value.startswith(ERROR_STYLE):  # the value that was wrong has been corrected
            self.status.value = READY

    # ---- what the buttons do ------------------------------------------------------------------------------
    def start(self) -> None:
        """Train with the current values in a background thread (what the Train button does)."""
        self._start(self._train, self.config())

    def sweep(self) -> None:
        """Three short runs around the current learning rate, one after another, into the list (the Sweep button)."""
        self._start(self._sweep, self.config())

    def resume(self) -> None:
        """Continue the newest stopped run from its checkpoint (the Resume button)."""
        entry = self._resumable()
        if entry is not None:
            self._start(self._resume, entry)

    def ask(self) -> None:
        """Every checked run answers the same held-out questions, shown side by side (the Ask button)."""
        self._start(self._ask, stoppable=False, doing="asking the checked runs the questions ...")

    def stop(self) -> None:
        """Ask the running training to stop after its current step (what the Stop button does)."""
        self.stop_flag.set()
        self.stop_button.disabled = True
        self.status.value = STOPPING

    def _start(self, job, *args, stoppable: bool = True, doing: str = "starting: loading the model and data ...") -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.stop_flag.clear()
        self.error = None
        self._set_busy(True, stoppable)
        self.status.value = doing
        if stoppable and self.plot_area.children[0] is not self.plot:  # no curve yet: say what is happening
            self.plot_area.children = (W.HTML(STARTING),)
        self.thread = threading.Thread(target=self._guarded, args=(job, *args), daemon=True)
        self.thread.start()

    def _guarded(self, job, *args) -> None:
        try:
            job(*args)
        except Exception as e:  # shown in the panel: a thread has nowhere else to report
            self.error = e
            self.status.value = f"{ERROR_STYLE}{type(e).__name__}: {e}</span>"
            if self.answers.value.startswith(ASKING[:10]):
                self.answers.value = ""
        finally:
            if self.plot_area.children[0] is not self.plot:  # it ended before any curve: "No run yet" again
                self.plot_area.children = (W.HTML(PLACEHOLDER),)
            self._set_busy(False)

    def _set_busy(self, busy: bool, stoppable: bool = True) -> None:
        for b in (self.train_button, self.sweep_button):
            b.disabled = busy
        self.stop_button.disabled = not (busy and stoppable)
        resumable = self._resumable()
        self.resume_button.disabled = busy or resumable is None
        self.resume_button.tooltip = (NO_RESUME if resumable is None else
                                      f"Continue run #{resumable.number} from its checkpoint")
        self.ask_button.disabled = busy or not any(e.ended for e in self.entries)

    def _resumable(self):
        """The newest stopped run in the list (Resume continues it), or None."""
        return next((e for e in reversed(self.entries) if e.status == "stopped"), None)

    # ---- the jobs (in the background thread, or in the foreground for result()) ------------------------------
    def _add(self, config: TrainConfig, sweep: bool = False) -> PanelRun:
        entry = PanelRun(len(self.entries) + 1, config, sweep)
        entry.checkbox.observe(lambda change: self.draw(), names="value")
        self.entries.append(entry)
        self.table.children = (*self.table.children, entry.line)
        return entry

    def _callbacks(self) -> list:
        return [_PanelProgress(self), _PanelRedraw(self)]

    def _train(self, cfg: TrainConfig, verbose: bool = False) -> None:
        self._fit(self._add(cfg), cfg, data=self.data, verbose=verbose)

    def _resume(self, entry: PanelRun) -> None:
        """The stopped Run's line trains again: prepare_run continues that run from its checkpoint."""
        self._fit(entry, entry.run.config, resume=entry.run.path, data=self.data, verbose=False)

    @releases_memory
    def _fit(self, entry: PanelRun, config: TrainConfig, **kw) -> None:
        """prepare_run (the line says "starting"), then the line holds the Run it returned while fit trains it and
        finish saves it. A crash shows in the line (the panel's status line says why); a resume that fails before it
        starts leaves the line with its stopped Run, still resumable."""
        entry.set_waiting("starting")
        try:
            run = prepare_run(config, stop=self.stop_flag, plot=False, callbacks=self._callbacks(), **kw)
        except BaseException:
            entry.set_waiting(None if entry.run is not None else "crashed")
            raise
        entry.attach(run)
        try:
            fit(run)  # a crash: fit records it in the Run and saves it, then raises
        finally:
            entry.update()
        self._ended(entry, finish(run))

    def _sweep(self, cfg: TrainConfig) -> None:
        entries = [self._add(cfg.replace(learning_rate=lr), sweep=True) for lr in sweep_rates(cfg.learning_rate)]
        queue = list(entries)  # the lines still waiting for their Run

        def ended(run):
            self._ended(next(e for e in entries if e.run is run), run)
            if queue and not self.stop_flag.is_set():
                queue[0].set_waiting("starting")

        entries[0].set_waiting("starting")
        crashed = True
        try:
            result = lr_sweep(cfg, [e.config.learning_rate for e in entries], steps=self.num_steps(),
                              data=self.data, plot=False, verbose=False, save_model=True, stop=self.stop_flag,
                              callbacks=self._callbacks(), on_start=lambda run: queue.pop(0).attach(run),
                              on_run=ended)
            crashed = False
        finally:
            for e in entries:
                if e.run is None:  # it never trained: the sweep was stopped, or this line's run failed to start
                    e.set_waiting("crashed" if crashed and e.status == "starting" else "not run")
                e.update()  # a Run that crashed while it trained says so
        for e, label in zip(entries, result.labels):
            e.label_note = label
            e.update()
        if not self.stop_flag.is_set():
            self.status.value = f"Sweep done. Suggested learning rate: {result.best_lr or 'none of the three'}."

    def _ended(self, entry: PanelRun, run: Run) -> None:
        """A run ended (its line holds it since prepare_run): the plot shows it, older runs give their models back."""
        self.run = run
        for e in self.entries:
            if e is not entry and e.run is not None and e.run.model is not None and (e.run.path / "model").is_dir():
                e.run.model = None  # memory: loaded again from its folder when asked questions
        entry.update()
        self.draw()
        steps = run.history[-1]["step"] if run.history else 0
        text = f"<b>{run.status}</b> after {steps} steps, {run.seconds / 60:.1f} min. Saved in {run.path}."
        if run.status == "stopped":
            text += (f" A checkpoint was saved: press <b>Resume</b> to continue, or run "
                     f"<code>train(resume='{run.name}')</code>.")
        elif run.message:
            text += f" {html.escape(run.message)}"
        self.status.value = text

    def _ask(self) -> None:
        chosen = [e for e in self.entries if e.checkbox.value and e.ended]
        if not chosen:
            self.status.value = "Check at least one run that has ended, then ask again."
            return
        self.questions = self.questions or panel_questions(3)
        answers = {}
        for i, e in enumerate(chosen):  # said beside the button and in the status line: it takes seconds per run
            doing = (f"asking run #{e.number} ({i + 1} of {len(chosen)}) {len(self.questions)} questions: "
                     f"{'loading its model from its folder, then ' if e.run.model is None else ''}generating ...")
            self.answers.value = ASKING.format(doing)
            self.status.value = doing
            answers[e.number] = self._answers(e.run, [q["question"] for q in self.questions])
        self.answers.value = answers_html(self.questions, chosen, answers)
        self.answer_table = [{"question": q["question"], **{e.label: answers[e.number][i] for e in chosen}}
                             for i, q in enumerate(self.questions)]
        self.status.value = f"{len(chosen)} run(s) answered {len(self.questions)} questions (below the run list)."

    @staticmethod
    def _answers(run: Run, prompts: list) -> list:
        if run.model is None and not (run.path / "model").is_dir():
            return ["(no saved model: this run kept none)"] * len(prompts)
        model, tokenizer = run_model(run)
        return generate(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS)

    # ---- drawing ----------------------------------------------------------------------------------------
    def _show_png(self, png: bytes) -> None:
        self.plot.value = png
        if self.plot_area.children[0] is not self.plot:
            self.plot_area.children = (self.plot,)

    def figure(self):
        """The checked runs' losses (train and validation) overlaid, in the colours of the table."""
        chosen = [e for e in self.entries if e.checkbox.value and e.run is not None and e.run.history]
        return plot_runs([e.run.history for e in chosen], labels=[e.label for e in chosen],
                         colors=[e.color for e in chosen], title="loss of the checked runs")

    def draw(self) -> None:
        """Show figure() in the plot area (the placeholder stays until there is a run)."""
        if self.entries:
            self.live.show_figure(self.figure())

    def wait(self, timeout: float | None = None):
        """Block until the button-started job ends; returns the last run."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.run

    def result(self):
        """The last run; when none was started, train now with the current values (headless notebooks)."""
        if self.thread is not None:
            return self.wait()
        if self.run is None:
            self._train(self.config(), verbose=True)
            self._set_busy(False)
        return self.run

    @functools.cached_property
    def widget(self) -> W.Widget:
        c = self.controls
        buttons = W.HBox([self.train_button, self.stop_button, self.resume_button])
        left = W.VBox([c[n] for n in FIELDS] + [buttons, self.sweep_button, self.progress, self.status, self.warning])
        # the answers (and, while they come, what is being asked) right under the Ask button
        return W.VBox([W.HBox([left, self.preview]), self.plot_area, self.table, self.ask_button, self.answers])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def training_panel(config: TrainConfig | None = None, **kw) -> TrainingPanel:
    """The notebook's hyperparameter panel (see TrainingPanel)."""
    return TrainingPanel(config, **kw)
