"""train(): finetune a model with transformers.Trainer and get back a Run you can plot, compare and resume.

Training an LLM is training any neural network: feed a batch, compute the loss, backpropagate, update
the weights. Trainer does that loop; this module chooses its settings from a TrainConfig, adds the
course's callbacks (history, live plot, stop button, divergence guard) and saves everything under runs/.

transformers' trainer stack is imported on first use, so `import llmcourse` stays quick.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import threading
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch

from llmcourse.training.config import TrainConfig
from llmcourse.core.errors import CourseError, say_call
from llmcourse.core.hardware import releases_memory
from llmcourse.training.losses import can_skip_unlabelled_logits, labelled_token_loss
from llmcourse.training.lora import record_adapter_base
from llmcourse.training.lowmem import keeps_model, with_savers
from llmcourse.training.placement import fsdp, rank, resolve_precision, same_folder_on_every_process, set_threads_for_this_process
from llmcourse.training.preparation import prepare_data, prepare_model
from llmcourse.training.runs import (RECORD, Run, check_free_space, find_run, is_run, last_complete_checkpoint,
                                     load_run, made_by_the_course, plan_run_folder, refuse_if_training, release_folder, run_folders,
                                     runs_dir, saved_config, set_aside_incomplete_checkpoints)
from llmcourse.training.schedules import make_scheduler
from llmcourse.training.compiling import (BUCKET, compile_layers, decide, remember,
                                          steady_tokens_per_second, uncompile_layers,
                                          watch_compiling)
from llmcourse.training.cost import estimate_cost
from llmcourse.data.tokenization import Collator
from llmcourse.training.callbacks import history_rows, stop_on_interrupt
from llmcourse.plots.figures import plot_history

# peft calls a transformers method that transformers 5 marks deprecated; nothing a learner can act on
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

@functools.cache
def _trainer_class():
    from transformers import Trainer

    class CourseTrainer(Trainer):
        """Trainer whose schedule comes from make_scheduler (previews match exactly) and whose evaluation leaves the RNG alone."""

        def __init__(self, *a, course_config: TrainConfig, lr_lambda=None, **kw):
            super().__init__(*a, **kw)
            self.course_config, self.lr_lambda = course_config, lr_lambda

        def evaluate(self, *args, **kwargs):
            # Evaluating draws random numbers; forking keeps dropout and data order as without it (exact resume)
            devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):
                return super().evaluate(*args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # Unwrapped model (one process): the vocabulary projection only where a label is. Under DDP/FSDP
            # the wrapper's own forward must run (it syncs gradients), so Trainer's way is kept there.
            if model is self.model and "labels" in inputs and can_skip_unlabelled_logits(model):
                loss = labelled_token_loss(model, inputs, num_items_in_batch)
                return (loss, {"loss": loss}) if return_outputs else loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        def step_loss(self) -> float:
            """This step's training loss before the optimizer applies it, as Trainer will log it (logging_steps=1:
            the running sum holds this step's micro-batches only; averaged over processes under DDP)."""
            from transformers.trainer_pt_utils import nested_gather

            return nested_gather(self._tr_loss, self.args.parallel_mode).mean().item()

        def _save(self, output_dir=None, state_dict=None):
            # No pickled TrainingArguments (training_args.bin): nothing reads it; train_config.json has the settings
            super()._save(output_dir, state_dict)
            with contextlib.suppress(FileNotFoundError):
                (Path(output_dir or self.args.output_dir) / "training_args.bin").unlink()

        def _save_checkpoint(self, model, trial):
            # A checkpoint cut off by an earlier kill must not count towards save_total_limit, or the rotation
            # would delete a complete one and keep it: it is set aside (renamed, never deleted) first
            if self.args.should_save:
                set_aside_incomplete_checkpoints(Path(self.args.output_dir))
            super()._save_checkpoint(model, trial)

        def _run_epoch(self, *args, **kw):
            # Resumed from the last checkpoint (killed in the final save): Trainer would take a step past the end
            if self.state.global_step >= self.state.max_steps > 0:
                self.control.should_training_stop = True
                return None
            return super()._run_epoch(*args, **kw)

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = make_scheduler(self.course_config, optimizer or self.optimizer,
                                                   num_training_steps, self.lr_lambda)
                self._created_lr_scheduler = True
            return self.lr_scheduler

    return CourseTrainer


def _training_args(config: TrainConfig, path: Path, precision: str, device: torch.device, has_eval: bool,
                   resuming: bool):
    from transformers import TrainingArguments

    # The schedule (lr_scheduler_type, warmup_ratio) is not passed: CourseTrainer builds it from the config itself
    return TrainingArguments(
        output_dir=str(path / "checkpoints"), learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,  # eval fits where training fits
        gradient_accumulation_steps=config.gradient_accumulation_steps, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, seed=config.seed, data_seed=config.seed,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=device.type == "cpu",
        logging_strategy="steps", logging_steps=1, logging_nan_inf_filter=False,
        eval_strategy="steps" if has_eval else "no", eval_steps=config.eval_steps or 10**9,
        eval_on_start=has_eval and not resuming,  # the validation loss before any training: the curve's start
        save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 10**9,
        save_total_limit=config.save_total_limit, metric_for_best_model="eval_loss" if has_eval else None,
        greater_is_better=False, report_to="none", disable_tqdm=True, include_num_input_tokens_seen="non_padding",
        activation_checkpointing=config.activation_checkpointing,
        ddp_find_unused_parameters=False, dataloader_pin_memory=device.type == "cuda",
        prediction_loss_only=True)  # evaluation needs the loss only, never the logits


def _resume_target(config: TrainConfig | None, resume) -> tuple[TrainConfig, Path, str]:
    """(config, run folder, checkpoint) to continue. resume=True: the newest run of exactly this config that holds a
    checkpoint; a run name, name prefix or folder: that run, with its own saved config unless one is given."""
    if resume is True:
        if config is None:
            raise CourseError("resume=True continues the run of a config: pass it, or name the run: "
                              "train(resume='<run name>').")
        same = [p for p in reversed(run_folders()) if saved_config(p) == config.to_dict()]
        candidates = [Path(config.output_dir).expanduser()] if config.output_dir else same
    elif (Path(resume) / "trainer_state.json").is_file():  # a checkpoint folder: runs/<name>/checkpoints/checkpoint-N
        folder = Path(resume).parent.parent
        return config or load_run(folder).config, folder, str(resume)
    else:
        candidates = [find_run(resume)]
        config = config or load_run(candidates[0]).config
    for path in candidates:
        last = last_complete_checkpoint(path / "checkpoints", verbose=True)
        if last is not None:
            return config, path, last
    where = candidates[0] if candidates else f"no run in {runs_dir()} with exactly this config"
    raise CourseError(f"resume: {where} holds no checkpoint. A run leaves one when it is stopped (Stop button, "
                      "Ctrl-C) or every save_steps steps; start it again without resume.")


@dataclass
class Session:
    """What fit() and finish() need beside the Run's record: the Trainer, the course's callbacks, how it began."""
    trainer: object
    stopper: object
    guard: object
    live: object
    stop: threading.Event
    checkpoint: str | None  # resuming from this checkpoint folder, or None
    main: bool  # the process that prints and saves (rank 0)
    verbose: bool
    loaded_here: bool  # train() loaded the model itself (low-memory mode may then let it go at the end)
    timing: dict = field(default_factory=dict)  # torch.compile's seconds and problems
    signals: list = field(default_factory=list)  # SIGINT / SIGTERM received while fitting


@releases_memory
def train(config: TrainConfig | None = None, *, model=None, tokenizer=None, data=None, resume=False, overwrite=False,
          callbacks=(), plot: bool | None = None, stop: threading.Event | None = None, estimate: bool = True,
          verbose: bool = True, lr_lambda=None) -> Run:
    """Finetune a model (full or LoRA) as `config` says and return the Run: history, timing, paths, the model.

    model/tokenizer: train these (in place) instead of loading config.model. data: a name or file for
    load_instruction_data (a name, file, list of rows, DataFrame), or a DatasetDict/dict of splits (train and
    optionally validation; rows or tokenized), or a Dataset.
    Each run gets a new folder runs/<name>-<start time> (or runs/<run_name>, -2, -3 ... when taken), so no run is
    ever lost; overwrite=True replaces the run of that name instead, once the model and data have loaded.
    resume=True continues this config's run from its last checkpoint, step for step as if never stopped;
    resume='<run name>' (or its folder) continues that run with its saved config.
    Ctrl-C, the notebook's stop button or setting `stop` end the run after the current step with a checkpoint.
    plot: live loss plot (default: in notebooks only). lr_lambda: a custom multiplier schedule (range test).
    """
    run = prepare_run(config, model=model, tokenizer=tokenizer, data=data, resume=resume, overwrite=overwrite,
                      callbacks=callbacks, plot=plot, stop=stop, estimate=estimate, verbose=verbose, lr_lambda=lr_lambda)
    fit(run)
    return finish(run)


def prepare_run(config: TrainConfig | None = None, *, model=None, tokenizer=None, data=None, resume=False,
                overwrite=False, callbacks=(), plot: bool | None = None, stop: threading.Event | None = None,
                estimate: bool = True, verbose: bool = True, lr_lambda=None) -> Run:
    """Reserve the run's folder, load model and data, decide precision and compiling, build the Trainer and its
    callbacks: the Run, recorded as running (train()'s arguments)."""
    from transformers import set_seed

    main = rank() == 0
    config, path, replace, checkpoint = _run_folder(config, resume, overwrite, verbose and main)
    try:
        set_seed(config.seed)
        set_threads_for_this_process()
        model_and_tokenizer = prepare_model(config, model, tokenizer)
        data = prepare_data(config, model_and_tokenizer[1], data, verbose=verbose and main)
        run = _new_run(config, path, *model_and_tokenizer)
        if main:
            check_free_space(run)
        run.session = _session(run, data, checkpoint, callbacks, plot, stop, lr_lambda, main, verbose, model is None)
        _measure(run, estimate)  # the timed step: a Ctrl-C here too gives the name back
    except BaseException:
        if main and checkpoint is None and not config.output_dir:
            release_folder(path)  # the name goes back: a typo in the data path does not make the next run "-2"
        raise
    if main and replace and made_by_the_course(path):  # overwrite=True: the old run goes only now the new one loaded
        shutil.rmtree(path)
    if main:
        run.save()
    return run


def _run_folder(config: TrainConfig | None, resume, overwrite: bool, verbose: bool):
    """(config, run folder, whether an old run there is replaced, the checkpoint to resume from or None)."""
    if resume:
        config, path, checkpoint = _resume_target(config, resume)
        refuse_if_training(path, "resume")
        return config, path, False, checkpoint
    config = with_savers(config or TrainConfig(), verbose=verbose)  # LLMCOURSE_LOW_MEMORY, little RAM
    path, replace = plan_run_folder(config, overwrite) if rank() == 0 else (None, False)
    return config, same_folder_on_every_process(path), replace, None


def _new_run(config: TrainConfig, path: Path, model, tokenizer) -> Run:
    device = next(model.parameters()).device
    if fsdp() and torch.cuda.is_available():
        device = torch.device("cuda")  # still on the CPU here; FSDP moves the shards to the GPUs
    return Run(config=config, path=path, precision=resolve_precision(config.precision, device), device=str(device),
               model=model, tokenizer=tokenizer, started=datetime.now().isoformat(),
               trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
               total_params=sum(p.numel() for p in model.parameters()))


def _session(run: Run, data, checkpoint, callbacks, plot, stop, lr_lambda, main: bool, verbose: bool,
             loaded_here: bool) -> Session:
    """The Trainer with the course's callbacks: history, stop (button, Ctrl-C, SIGTERM), divergence, progress, plot."""
    from transformers import PrinterCallback

    from llmcourse.training.callbacks import (DivergenceGuard, HistoryCallback, LivePlot, ProgressBar,
                                              SkipEvalBeforeTheLast, StopCallback)

    config, flag = run.config, stop or threading.Event()
    stopper, guard = StopCallback(flag), DivergenceGuard(config.divergence_factor, rollback=config.divergence_rollback)
    live = LivePlot(title=run.name, enabled=plot) if main else None
    extra = [ProgressBar(run.name)] if verbose else []
    args = _training_args(config, run.path, run.precision, torch.device(run.device), data["validation"] is not None,
                          resuming=checkpoint is not None)
    trainer = _trainer_class()(
        model=run.model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
        processing_class=run.tokenizer, data_collator=_collator(run.tokenizer), course_config=config,
        lr_lambda=lr_lambda, callbacks=[HistoryCallback(run), SkipEvalBeforeTheLast(), stopper, guard, *extra,
                                        *([live] if live else []), *callbacks])
    trainer.remove_callback(PrinterCallback)
    guard.step_loss = trainer.step_loss
    return Session(trainer, stopper, guard, live, flag, checkpoint, main, verbose, loaded_here)


def _measure(run: Run, estimate: bool) -> None:
    """The cost estimate (a resumed run keeps the one made when it started) and whether to compile."""
    s = run.session
    if s.checkpoint is not None and is_run(run.path):
        before = json.loads((run.path / RECORD).read_text())
        run.estimate, run.started = before.get("estimate"), before.get("started") or run.started
        run.seconds, run.tokens = before.get("seconds") or 0.0, before.get("tokens") or 0  # its clock goes on from here
        run.history = load_run(run.path).history  # kept on disk until the resumed run logs its own (a crash keeps it)
    elif s.main and estimate and not fsdp():  # under FSDP the whole model is still on the CPU
        run.estimate = estimate_cost(s.trainer, run.config, run.precision, verbose=s.verbose).to_dict()
    run.compiled = _compiles(run, s.trainer, torch.device(run.device), verbose=s.verbose and s.main)
    if run.compiled:
        s.trainer.data_collator.pad_to_multiple_of = BUCKET  # dynamic shapes serve every length; 8 aligns rows
        compile_layers(run.model)


def fit(run: Run) -> Run:
    """Train a prepared run. The Stop button, Ctrl-C and SIGTERM end it after the current step with a checkpoint; a
    second one aborts; a divergence rolls back; a crash is recorded and saved (finish), then raised."""
    s = run.session
    try:
        with watch_compiling() as s.timing, stop_on_interrupt(s.stop) as s.signals, _quiet_transformers():
            s.trainer.train(resume_from_checkpoint=s.checkpoint)
    except KeyboardInterrupt:
        run.status = "interrupted"
        run.message = "Aborted in the middle of a step: the weights in memory may be half-updated and were not saved. "
        run.message += _what_is_left(run)
    except BaseException as e:
        run.status, run.message = "crashed", f"{type(e).__name__}: {e}"
        finish(run)
        raise
    else:
        _set_outcome(run, s.trainer, s.stopper, s.guard)
    return run


def finish(run: Run) -> Run:
    """Save a fitted run: the model (whole or not at all), record, history and plot; the Trainer goes. A first Ctrl-C
    or SIGTERM during the save lets it finish (a second aborts it); after a SIGTERM the process then ends, as asked."""
    s, run.session = run.session, None
    if run.compiled:
        _uncompile(run, s.timing)
    with stop_on_interrupt(threading.Event(), saving=True) as late:  # a Ctrl-C or SIGTERM now lets the save end
        _save_run(run, s.trainer, s.live, s.main, s.verbose)
    s.signals += late
    if s.main:
        with contextlib.suppress(OSError):  # a speed note for the next `auto`: never worth a run
            _remember_speed(run, s.timing)
    if s.main and not keeps_model(run, s.loaded_here):
        run.model = None  # low-memory mode: load_model(run.path) brings it back
    if signal.SIGTERM in s.signals and run.status != "crashed":  # the checkpoint and record are saved: now end
        signal.raise_signal(signal.SIGTERM)
    return run


def _what_is_left(run: Run) -> str:
    """What a run that ended early left on disk, and the call that continues it."""
    last = last_complete_checkpoint(run.path / "checkpoints")
    if last is None:
        return "No checkpoint was saved, so nothing can be resumed: start the run again."
    call = say_call(f"train(resume={_resume_name(run)!r})", f"train --resume {_resume_name(run)}")
    return f"The last complete checkpoint is {Path(last).name}: {call} continues from it."


@contextlib.contextmanager
def _quiet_transformers():
    """No per-checkpoint "Writing model shards" bars or log lines in the middle of our own progress bar."""
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _compiles(run: Run, trainer, device: torch.device, verbose: bool) -> bool:
    """Whether this run compiles its layers: what the cost estimate chose (and printed), else TrainConfig.compile
    without a timed step (auto then stays eager)."""
    if run.estimate and "compile" in run.estimate:
        return run.estimate["compile"]
    config = run.config
    chosen = decide(config.compile, device, steps=0, seconds_per_step=None, model=run.model, method=config.method,
                    precision=run.precision, distributed=trainer.args.world_size > 1)
    if verbose and config.compile == "true" and not chosen.compile:
        print(f"compile: {chosen.reason}")
    return chosen.compile


def _uncompile(run: Run, timing: dict) -> None:
    """After a compiled run: its compile time, back to eager layers, one line if a compile failed."""
    run.compile_seconds = round(timing.get("compile_seconds", 0.0), 1)
    uncompile_layers(run.model)
    if timing.get("problems"):
        run.compiled = False
        print(f"compile: {timing['problems'][0]} -- those layers ran eagerly (same results, no speed-up); "
              "compile=false skips compiling")


def _remember_speed(run: Run, timing: dict) -> None:
    """A finished run's steady speed (compiled or eager) and compile seconds, for the next `auto` decision: the
    speed-up auto expects on this machine is what its own compiled and eager runs measured."""
    speed = steady_tokens_per_second(run.history)
    if run.status != "finished" or speed is None or timing.get("problems") or run.model is None:
        return
    values = {"compiled" if run.compiled else "eager": speed}
    if run.compiled and run.compile_seconds:  # 0 when this process had compiled the same graphs already
        values["seconds"] = run.compile_seconds
    remember(run.model, run.config.method, run.precision, **values)


def _collator(tokenizer):
    return Collator(pad_token_id=tokenizer.pad_token_id)


def _set_outcome(run: Run, trainer, stopper, guard) -> None:
    lr = run.config.learning_rate
    if guard.tripped:
        t = guard.tripped
        kept = (f"The weights from step {t['restored_step']} (before the blow-up) were put back and saved."
                if t["restored_step"] is not None else _no_rollback(run, t["good_step"]))
        run.status = "diverged"
        run.message = (f"Diverged at step {t['step']}: the {t['what']} was {t['loss']:.4g} (NaN/inf, or over "
                       f"{run.config.divergence_factor:g}x its early minimum). The learning rate {lr:g} is too high "
                       f"for this setting. {kept} Try learning_rate={lr / 10:.1e}.")
    elif stopper.stopped_at is not None and trainer.state.global_step < trainer.state.max_steps:
        run.status = "stopped"
        call = say_call(f"train(resume={_resume_name(run)!r})", f"train --resume {_resume_name(run)}")
        run.message = (f"Stopped at step {stopper.stopped_at} of {trainer.state.max_steps}; a checkpoint was saved, "
                       f"so {call} continues exactly from here.")
    else:
        run.status, run.message = "finished", ""


def _resume_name(run: Run) -> str:
    """What to pass as resume= for this run: its name when it lives in runs_dir(), else its folder."""
    return run.name if run.path.parent.resolve() == runs_dir().resolve() else str(run.path)


def _no_rollback(run: Run, good_step: int) -> str:
    """Where a diverged run without the guard's weight copy can go back to: the newest checkpoint of good weights
    (a later one may hold the weights that already blew up, which the next step's loss revealed)."""
    why = ("divergence_rollback=False" if not run.config.divergence_rollback
           else "the model is too large for an in-memory copy")
    folder = run.path / "checkpoints"
    steps = [int(p.name.split("-")[1]) for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    good = max((s for s in steps if s <= good_step), default=None)
    back = (f"the last checkpoint with good weights is {folder / f'checkpoint-{good}'}" if good is not None
            else "no checkpoint with good weights was saved, so the run has to start again")
    return f"No copy of the earlier weights was kept ({why}); {back}."


def _save_model(run: Run, trainer, main: bool) -> None:
    """The final model into model.partial/, renamed to model/ once complete: model/ is whole or absent."""
    partial, final = run.path / "model.partial", run.path / "model"
    with _quiet_transformers():
        trainer.save_model(str(partial))  # every rank must call it; only the main one writes
    if not main:
        return
    if hasattr(run.model, "peft_config"):
        record_adapter_base(partial, run.model, run.config)
    old = run.path / "model.old"  # a resumed run's earlier model (saved when it stopped) goes once the new one is whole
    if old.is_dir() and final.is_dir():  # a kill while deleting a stale copy: model/ is whole, the new one saved
        shutil.rmtree(old)
    if final.is_dir():  # (with no model/, a model.old is the last whole model: it goes only after the new one is in)
        os.replace(final, old)
    os.replace(partial, final)
    if old.is_dir():
        shutil.rmtree(old)


def _save_run(run: Run, trainer, live, main: bool, verbose: bool) -> None:
    """Fill in the record from Trainer's state; on the main process save the model, history and plot."""
    run.history = history_rows(trainer.state.log_history)
    run.tokens = trainer.state.num_input_tokens_seen
    run.best_checkpoint = trainer.state.best_model_checkpoint
    if torch.cuda.is_available():
        run.peak_memory_mb = round(torch.cuda.max_memory_allocated() / 2**20)
    if run.status in ("finished", "stopped", "diverged") and run.config.save_model:
        try:
            _save_model(run, trainer, main)
        except BaseException as e:  # Ctrl-C, a full disk: say what is left, then let it go on up
            run.status = "crashed"
            run.message = f"Saving the model failed ({type(e).__name__}: {e}), so there is no model/. {_what_is_left(run)}"
            if main:
                run.save()
            raise
    if not main:
        return
    checkpoints = run.path / "checkpoints"
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()  # Trainer makes the folder even when nothing was saved in it
    run.save()
    if live is not None:
        live.finish(run)
    plot_history(run, save=run.path / "loss.png")
    if run.message and verbose:
        print(run.message)
