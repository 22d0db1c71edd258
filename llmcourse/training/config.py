"""TrainConfig: every training setting in one dataclass that drives train(), the widgets, the CLI and run records.

Field names follow `transformers.TrainingArguments` where one exists, so what you learn here carries over.
Each field's `help` is the text shown by `--help`, by the widgets' tooltips and in the notebook.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from llmcourse.core.errors import CourseError
from llmcourse.core.fastmode import capped, fast_mode
from llmcourse.core.paths import BUNDLED
from llmcourse.data.templates import SYSTEM_PROMPT

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "warmup_stable_decay")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
COMPILE = ("auto", "true", "false")


def _f(default, help: str, **extra):
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """All settings of one training run. `TrainConfig.fast()` is a seconds-long preset for tests and fast mode."""

    # What to train on
    model: str = _f(BUNDLED, f"Model to finetune: the bundled {BUNDLED!r}, 'tiny-random' "
                    "(tests), a local folder, a run folder under runs/, or a hub id.")
    data: str = _f("kettlebird", "Training data: the shipped 'kettlebird' Q&A set, or a .jsonl/.csv file with "
                   "prompt/completion (or question/answer) columns.")
    validation: float = _f(0.1, "Share of the training rows held out as a validation split when the data has none "
                           "(seeded by `seed`; 1 to 200 rows; duplicate questions stay on one side); 0 = none. "
                           "The shipped set's validation split is fixed.")
    template: str = _f("chat", "How an example becomes text: 'chat' (the model's chat template), 'alpaca', 'qa'.")
    system_prompt: Optional[str] = _f(SYSTEM_PROMPT, "The bot's own system turn, in training and at inference "
                                      "alike (saved with the run's tokenizer); rows with their own `system` keep "
                                      "theirs. None = the model's default (SmolLM2: 'You are a helpful AI assistant "
                                      "named SmolLM...'). Used with template='chat'.")
    max_length: int = _f(256, "Longest example in tokens; longer ones are cut (prompt first, answer last).")
    answer_only: bool = _f(True, "Compute the loss on the answer tokens only (the prompt is masked out).")
    packing: bool = _f(False, "Pack several short examples into one row, so no compute is spent on padding.")
    group_by_length: bool = _f(True, "Batch rows of similar length together, so little compute goes to padding "
                               "(on the shipped data padding falls from 14 to under 2 percent).")
    max_train_samples: Optional[int] = _f(None, "Train on at most this many rows (a quick subset); None = all.")
    max_eval_samples: Optional[int] = _f(64, "Evaluate on at most this many validation rows; None = all.")
    skip_bad_rows: bool = _f(False, "Skip rows of the data that are broken or do not fit its layout (they are "
                             "counted) instead of stopping at the first with its line number.")
    # The hyperparameters that matter first
    learning_rate: float = _f(1e-4, "Peak learning rate: how big each weight update is. Too low: the loss barely "
                              "moves; too high: it jumps around or explodes.")
    lr_scheduler_type: str = _f("cosine", "How the learning rate changes over the run: " + ", ".join(SCHEDULERS) +
                                ". 'constant' has no warmup; the others ramp up over warmup_ratio first.",
                                choices=SCHEDULERS)
    warmup_ratio: float = _f(0.1, "Fraction of the steps spent ramping the learning rate up from 0 (0 to <1).")
    num_train_epochs: float = _f(1.0, "Passes over the training data (ignored when max_steps > 0).")
    max_steps: int = _f(-1, "Stop after this many optimizer steps; -1 = use num_train_epochs.")
    per_device_train_batch_size: int = _f(8, "Rows per forward/backward pass (on each device).")
    gradient_accumulation_steps: int = _f(1, "Passes whose gradients are summed before one update: the effective "
                                          "batch is batch size x this x devices, at the memory cost of one pass.")
    weight_decay: float = _f(0.0, "AdamW weight decay: pulls weights a little towards 0 at each step.")
    max_grad_norm: float = _f(1.0, "Clip the gradient norm to this (protects against rare huge updates); 0 = off.")
    seed: int = _f(42, "Random seed: same seed + same settings = same run, step for step.")
    # LoRA
    lora: bool = _f(False, "Train small low-rank adapters (LoRA) instead of all weights: faster, less memory.")
    lora_r: int = _f(16, "LoRA rank: size of the adapters. Higher learns more, costs more.")
    lora_alpha: int = _f(32, "LoRA scale: adapter updates are multiplied by alpha / r.")
    lora_dropout: float = _f(0.0, "Dropout on the LoRA adapters' inputs. 0 by default: on a CPU each dropout copies "
                                  "every layer's input, and short runs on small data gain nothing from it.")
    lora_target_modules: str = _f("all-linear", "Layers that get adapters: 'all-linear', or names like "
                                  "'q_proj,v_proj'.")
    # Speed, precision, memory
    precision: str = _f("auto", "Number format for the forward/backward pass (weights stay fp32): 'auto' picks bf16 "
                        "on CPUs and GPUs that run it fast (LLMCOURSE_PRECISION=bf16|fp32 forces it on a CPU), fp16 on "
                        "older GPUs, else fp32.", choices=PRECISIONS)
    device: str = _f("auto", "auto, cpu, cuda or mps.")
    compile: str = _f("auto", "Compile the model's layers with torch.compile (fuses small operations; the bundled model's "
                      "first compile took 36 s on a 2-core CPU, later runs reuse the cached kernels): 'auto' compiles when "
                      "the cost estimate says the run is long enough to pay it back, 'true' always, 'false' never. "
                      "Compiled runs pad rows to a multiple of 32 tokens.", choices=COMPILE)
    activation_checkpointing: bool = _f(False, "Save memory by recomputing (also called gradient checkpointing): "
                                        "keep only each layer's input during the forward pass and recompute the "
                                        "rest in the backward pass. Same numbers, activations several times "
                                        "smaller; a step takes longer (2 CPU cores: 1.15x with full finetuning, "
                                        "1.45x with LoRA).")
    # Evaluation, checkpoints, runs
    eval_steps: int = _f(20, "Compute the validation loss every this many steps and at the end (one due less than "
                             "half an interval before the end is left to the final one); 0 = only at the end. A "
                             "run too short for 3 evaluations evaluates at its start, halfway and its end.")
    save_steps: int = _f(0, "Save a resumable checkpoint every this many steps; 0 = only when stopped or at the end.")
    save_total_limit: int = _f(2, "Keep at most this many checkpoints per run (oldest deleted first).")
    save_model: bool = _f(True, "Save the final model (or LoRA adapter) in runs/<name>/model.")
    divergence_factor: float = _f(4.0, "Stop when the training loss exceeds this many times its early minimum "
                                  "(or is NaN/inf), keeping the weights from before the blow-up; 0 = off.")
    divergence_rollback: bool = _f(True, "Put back the last good weights when a run diverges. It costs an in-memory "
                                   "copy of the trainable weights (full finetuning of the bundled model: 0.54 GB; "
                                   "LoRA: a few MB). False saves that memory; a diverged run is then stopped as is "
                                   "and its last checkpoint is the way back.")
    output_dir: Optional[str] = _f(None, "Run folder, used exactly as given (a run already there is replaced only "
                                   "with overwrite); default runs/<run_name> (see runs_dir()).")
    run_name: Optional[str] = _f(None, "Name of the run folder under runs/; default made from the settings and the "
                                 "start time, e.g. lora-r64-lr1e-03-cosine-1ep-1130-142501. A name already taken "
                                 "gets -2, -3, ...")

    def __post_init__(self):
        if isinstance(self.compile, bool):  # compile=True / False read as "true" / "false"
            self.compile = str(self.compile).lower()
        self.validate()

    # ---- presets -------------------------------------------------------------------------------------
    @classmethod
    def fast(cls, **overrides) -> "TrainConfig":
        """A seconds-long run on the tiny random model: the same code paths as a real run, for tests."""
        base = dict(model="tiny-random", max_steps=6, per_device_train_batch_size=4, max_train_samples=32,
                    max_eval_samples=8, max_length=64, eval_steps=3, learning_rate=1e-3, warmup_ratio=0.0,
                    lr_scheduler_type="constant")
        return cls(**{**base, **overrides})

    @classmethod
    def laptop(cls, **overrides) -> "TrainConfig":
        """The notebook default: LoRA on the bundled model, a few minutes on a 2-core CPU, answers visibly change.

        In fast mode (LLMCOURSE_FAST=1, how the test suite runs the notebooks) the same settings shrink to a
        seconds-long run: at most 3 steps, 8 validation rows and an evaluation every 2 steps (eval_steps=0 stays
        off); overrides can only shrink it further. So a notebook cell reads `TrainConfig.laptop(max_steps=30)`."""
        base = dict(lora=True, lora_r=64, lora_alpha=64, learning_rate=1e-3, num_train_epochs=1.0,
                    per_device_train_batch_size=8, lr_scheduler_type="cosine", warmup_ratio=0.05, eval_steps=25,
                    max_eval_samples=32)
        config = cls(**{**base, **overrides})
        if not fast_mode():
            return config
        return config.replace(max_steps=capped(config.max_steps, 3), max_eval_samples=capped(config.max_eval_samples, 8),
                              eval_steps=min(config.eval_steps, 2))

    # ---- conversions ---------------------------------------------------------------------------------
    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (and checked)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CourseError(f"TrainConfig has no field(s) {sorted(unknown)}. Known fields: {', '.join(field_names())}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a dict (e.g. a saved run's config.json); unknown keys are an error with their names."""
        unknown = set(d) - set(field_names())
        if unknown:
            raise CourseError(f"Unknown TrainConfig field(s) {sorted(unknown)}; known: {', '.join(field_names())}.")
        return cls(**d)

    def to_args(self) -> list[str]:
        """Command-line arguments that reproduce this config (only the fields that differ from the defaults)."""
        out, default = [], TrainConfig()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                out.append(flag if value else f"--no-{f.name.replace('_', '-')}")
            else:
                out += [flag, "None" if value is None else str(value)]
        return out

    def validate(self) -> None:
        """Raise CourseError naming the field, its value and what is allowed."""
        def bad(name, why):
            raise CourseError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            bad("learning_rate", "must be a positive number, e.g. 1e-4.")
        if self.lr_scheduler_type not in SCHEDULERS:
            bad("lr_scheduler_type", f"use one of {', '.join(SCHEDULERS)}.")
        if self.precision not in PRECISIONS:
            bad("precision", f"use one of {', '.join(PRECISIONS)}.")
        if self.compile not in COMPILE:
            bad("compile", f"use one of {', '.join(COMPILE)} (or True / False).")
        if not 0 <= self.warmup_ratio < 1:
            bad("warmup_ratio", "must be at least 0 and below 1 (a fraction of the steps).")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                bad(name, "must be at least 1.")
        if self.max_steps <= 0 and self.max_steps != -1:
            bad("max_steps", "must be a positive number of steps, or -1 to use num_train_epochs.")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            bad("num_train_epochs", "must be above 0 (or set max_steps).")
        for name in ("eval_steps", "save_steps", "weight_decay", "max_grad_norm", "divergence_factor"):
            if getattr(self, name) < 0:
                bad(name, "must not be negative.")
        if not 0 <= self.validation < 1:
            bad("validation", "must be at least 0 (no validation split) and below 1, e.g. 0.1.")
        if not 0 <= self.lora_dropout < 1:
            bad("lora_dropout", "must be in [0, 1).")
        if not self.lora_alpha > 0:
            bad("lora_alpha", "must be above 0: the adapter's updates are scaled by lora_alpha / lora_r, so 0 would "
                              "train an adapter that changes nothing (the course uses lora_alpha = lora_r).")
        if not 0 <= self.seed < 2**32:
            bad("seed", f"must be a whole number from 0 to {2**32 - 1}, e.g. 42.")
        name = self.run_name
        if name is not None and (name.strip() in ("", ".", "..") or name != name.strip() or "/" in name or "\\" in name):
            bad("run_name", "a run name is one folder name under runs/, e.g. 'lora-high-lr': no '/' or '\\', not "
                            "'.' or '..', not empty, no spaces at either end.")

    @property
    def method(self) -> str:
        """What the run trains: "full", or "lora-r16" (with its rank); its name and the compile record use this."""
        return f"lora-r{self.lora_r}" if self.lora else "full"

    @property
    def name(self) -> str:
        """The run name: run_name, else made from the settings, e.g. 'lora-r64-lr1e-03-cosine-1ep' or '...-30steps'."""
        if self.run_name:
            return self.run_name
        lr = f"{self.learning_rate:.1e}".replace(".0e", "e")
        length = f"{self.max_steps}steps" if self.max_steps > 0 else f"{self.num_train_epochs:g}ep"
        return f"{self.method}-lr{lr}-{self.lr_scheduler_type}-{length}"


def eval_points(eval_steps: int, max_steps: int) -> list[int]:
    """The steps at which a run of max_steps evaluates with an interval of eval_steps (0: none in between): the
    start, every interval except one due less than half an interval before the end, and the end."""
    inner = range(eval_steps, max_steps, eval_steps) if eval_steps > 0 else []
    return [0, *(s for s in inner if max_steps - s >= eval_steps / 2), max_steps]


def eval_interval(eval_steps: int, max_steps: int) -> int:
    """The interval a run of max_steps really evaluates at: eval_steps, or half the run where eval_steps would give
    fewer than 3 evaluations (12 steps at eval_steps=10: at 0, 6 and 12, not only at 0 and 12). eval_steps=0
    (only at the end) stays 0."""
    if eval_steps <= 0 or max_steps < 2 or len(eval_points(eval_steps, max_steps)) >= 3:
        return eval_steps
    return max_steps // 2


def field_names() -> list[str]:
    """All TrainConfig field names, in order."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def field_help(name: str) -> str:
    """The help text of one field (what widgets show as a tooltip)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainConfig)}[name]


def optional_parser(kind):
    """An argparse type for an Optional field: 'None' (or empty) gives None, anything else `kind(text)`."""
    def parse(text: str):
        return None if text.lower() in ("none", "") else kind(text)
    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def config_from_args(args) -> TrainConfig:
    """The TrainConfig held in a parsed argparse Namespace (extra attributes are ignored)."""
    return TrainConfig(**{name: getattr(args, name) for name in field_names() if hasattr(args, name)})
