"""One training benchmark run in this process: `python benchmarks/train_speed.py RECIPE --model M --steps N --out F.json`.

`python -m llmcourse bench` starts this script once per recipe, so each run's peak memory is its own.
Every recipe trains the same model on the same shipped Kettlebird training questions for the same number
of optimizer steps; only the recipe differs:

A   the original course's recipe, re-implemented faithfully with plain transformers: "### Question:/### Answer:"
    text, each row tokenized alone (batch_size=1 map), labels = input_ids (loss on the prompt too), fp32,
    batch 1 x gradient accumulation 4, Adafactor, lr 1e-5, warmup 1 step, eval/save every 120 steps.
    (transformers 5 also evaluates once at the end, which the course's version did not; that evaluation uses
    the 67-row validation split to keep the benchmark short, and like all evaluation it is not timed.)
B   TRL's SFTTrainer with SFTConfig's defaults (bf16 autocast, gradient checkpointing, batch 8, lr 2e-5,
    loss on the completion only) on the chat-format prompt/completion rows.
B32 B with bf16=False: what a user of an AVX2-only CPU, where bf16 is emulated, should set.
C   llmcourse.training.trainer with TrainConfig's defaults (full finetuning).
D   llmcourse.training.trainer with TrainConfig(lora=True) (LoRA on all linear layers).
CM  C saving memory: activation_checkpointing=True, divergence_rollback=False (the guard keeps no weight copy).
DM  D saving memory: activation_checkpointing=True (the adapters' rollback copy is a few MB, so it stays).
P   a plain PyTorch loop with C's data and batch (no Trainer), eager.
R   P compiled: torch.compile of the whole model (dynamic shapes), bf16 autocast where bf16 is native: the fastest
    plain loop, the ceiling this machine sets for C in the same run.

C, D, CM and DM take --compile (auto, true, false; `bench` passes true), and every run reports its tokens/s after the
first two steps (warm-up and compiling) and those steps' seconds apart; compiled runs also report torch's own count
of the seconds spent compiling.

B runs with use_cpu=True on a machine without a GPU (SFTConfig's bf16 default refuses to start otherwise).
Apart from that, only instrumentation is added to the recipes' own settings: Trainer counts non-padding tokens
(include_num_input_tokens_seen="non_padding"), logs the loss every step, and writes into a scratch folder.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from llmcourse.training.compiling import compile_seconds
from speedmeter import SpeedMeter, summarize, write_result

RECIPES = {
    "A": "original course recipe (fp32, batch 1 x accum 4, Adafactor, labels = inputs)",
    "B": "TRL SFTTrainer, SFTConfig defaults",
    "B32": "TRL SFTTrainer, defaults but bf16=False",
    "C": "llmcourse.training.trainer, default full finetuning",
    "D": "llmcourse.training.trainer, LoRA (lora=True, its default rank)",
    "CM": "llmcourse.training.trainer, full, checkpointing, no rollback copy",
    "DM": "llmcourse.training.trainer, LoRA, activation checkpointing",
    "P": "plain PyTorch loop, C's data and batch",
    "R": "plain PyTorch loop compiled (whole model), C's data and batch",
}
COURSE_TEMPLATE = "### Question:\n{question}\n\n### Answer:\n{answer}"


def _train_rows():
    from llmcourse.data.loading import load_instruction_data

    return load_instruction_data("kettlebird", verbose=False)


def _n_params(model) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def course_recipe(model_name: str, steps: int, workdir: Path) -> dict:
    """A: the original course's lesson-5 training, on today's transformers (minus the removed overwrite_output_dir)."""
    from transformers import Trainer, TrainingArguments, set_seed

    from llmcourse.models.loading import load_model

    set_seed(42)
    model, tokenizer = load_model(model_name)
    tokenizer.pad_token = tokenizer.eos_token
    dd = _train_rows()

    def tokenize_function(examples):  # the course's helper: reads only the first row, hence batch_size=1
        text = COURSE_TEMPLATE.format(question=examples["prompt"][0], answer=examples["completion"][0])
        tokenized = tokenizer(text, return_tensors="np", padding=True)
        max_length = min(tokenized["input_ids"].shape[1], 2048)
        tokenizer.truncation_side = "left"
        return tokenizer(text, return_tensors="np", truncation=True, max_length=max_length)

    def prepare(ds):
        ds = ds.map(tokenize_function, batched=True, batch_size=1, drop_last_batch=True, remove_columns=ds.column_names)
        return ds.add_column("labels", ds["input_ids"])

    args = TrainingArguments(
        learning_rate=1.0e-5, num_train_epochs=1, max_steps=steps, per_device_train_batch_size=1,
        output_dir=str(workdir), disable_tqdm=True, eval_steps=120, save_steps=120,
        warmup_steps=1, per_device_eval_batch_size=1, eval_strategy="steps", logging_strategy="steps",
        logging_steps=1, optim="adafactor", gradient_accumulation_steps=4, gradient_checkpointing=False,
        load_best_model_at_end=True, save_total_limit=1, metric_for_best_model="eval_loss", greater_is_better=False,
        report_to="none", include_num_input_tokens_seen="non_padding")
    meter = SpeedMeter()
    trainer = Trainer(model=model, args=args, train_dataset=prepare(dd["train"]), eval_dataset=prepare(dd["validation"]),
                      callbacks=[meter])
    trainer.train()
    total, trainable = _n_params(model)
    return {**meter.result(), "precision": "fp32", "batch_size": 1, "grad_accum": 4, "params": total,
            "trainable_params": trainable}


def trl_recipe(model_name: str, steps: int, workdir: Path, bf16: bool | None = None) -> dict:
    """B: TRL's SFTTrainer as its documentation shows it, every SFTConfig default kept (bf16 too, unless given)."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from llmcourse.models.loading import load_model

    model, tokenizer = load_model(model_name)
    train = _train_rows()["train"]
    rows = datasets.Dataset.from_dict({
        "prompt": [[{"role": "user", "content": p}] for p in train["prompt"]],
        "completion": [[{"role": "assistant", "content": c}] for c in train["completion"]]})
    extra = {} if bf16 is None else {"bf16": bf16}
    # use_cpu=True is the one setting a CPU needs: SFTConfig's default bf16=True otherwise refuses to start without a GPU
    cpu = {} if torch.cuda.is_available() else {"use_cpu": True}
    args = SFTConfig(output_dir=str(workdir), max_steps=steps, logging_steps=1, report_to="none", disable_tqdm=True,
                     include_num_input_tokens_seen="non_padding", **cpu, **extra)
    meter = SpeedMeter()
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer, callbacks=[meter])
    trainer.train()
    total, trainable = _n_params(model)
    return {**meter.result(), "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
            "batch_size": args.per_device_train_batch_size, "grad_accum": args.gradient_accumulation_steps,
            "params": total, "trainable_params": trainable,
            "notes": f"trl {__import__('trl').__version__}, gradient_checkpointing={args.gradient_checkpointing}"}


def llmcourse_recipe(model_name: str, steps: int, workdir: Path, lora: bool, compile: str, **memory_savers) -> dict:
    """C/D (CM/DM): llmcourse.training.trainer with TrainConfig's defaults; only the model, step count, run folder,
    compile setting and the memory savers asked for are set."""
    from llmcourse.training.config import TrainConfig
    from llmcourse.training.trainer import train

    config = TrainConfig(model=model_name, max_steps=steps, lora=lora, save_model=False, output_dir=str(workdir),
                         run_name="bench-lora" if lora else "bench-full", compile=compile, **memory_savers)
    meter = SpeedMeter()
    run = train(config, callbacks=[meter], plot=False, verbose=False)
    total, trainable = _n_params(run.model)
    if lora:
        total -= trainable  # the base model's parameters: the FLOPs formula counts the model, not the adapters
    return {**meter.result(), "precision": run.precision, "batch_size": config.per_device_train_batch_size,
            "grad_accum": config.gradient_accumulation_steps, "params": total, "trainable_params": trainable,
            "status": run.status, "compiled": run.compiled, "compile_seconds": run.compile_seconds,
            "notes": f"r={config.lora_r}, {config.lora_target_modules}" if lora else ""}


def plain_loop(model_name: str, steps: int, workdir: Path, compiled: bool = False) -> dict:
    """P: C's tokenized data, batch and optimizer in a bare loop; bf16 autocast only where bf16 matmuls are faster.
    R (compiled=True): the same loop with torch.compile(model, dynamic=True)."""
    from llmcourse.training.config import TrainConfig
    from llmcourse.core.hardware import bf16_speedup
    from llmcourse.models.loading import load_model
    from llmcourse.data.tokenization import Collator, tokenize_dataset

    config = TrainConfig(model=model_name)
    torch.manual_seed(config.seed)
    model, tokenizer = load_model(model_name)
    ds = tokenize_dataset(_train_rows()["train"], tokenizer, template=config.template, max_length=config.max_length,
                          verbose=False)
    loader = torch.utils.data.DataLoader(ds.select_columns(["input_ids", "attention_mask", "labels"]),
                                         batch_size=config.per_device_train_batch_size, shuffle=True,
                                         collate_fn=Collator(tokenizer.pad_token_id))
    bf16 = bf16_speedup() > 1.1
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, fused=True)  # as Trainer's default
    forward = torch.compile(model, dynamic=True) if compiled else model
    compiling_before = compile_seconds()
    model.train()
    seconds, tokens, losses = [], [], []
    batches = iter(loader)
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = forward(**batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        seconds.append(time.perf_counter() - start)
        tokens.append(int(batch["attention_mask"].sum()))
    total, trainable = _n_params(model)
    return {**summarize(seconds, tokens, losses), "precision": "bf16" if bf16 else "fp32",
            "batch_size": config.per_device_train_batch_size, "grad_accum": 1, "params": total,
            "trainable_params": trainable, "compiled": compiled,
            "compile_seconds": round(compile_seconds() - compiling_before, 1) if compiled else None}


def run_recipe(recipe: str, model_name: str, steps: int, workdir: Path, compile: str = "true") -> dict:
    """Run one recipe and return its measurements (without peak memory, which write_result adds)."""
    if recipe == "A":
        return course_recipe(model_name, steps, workdir)
    if recipe in ("B", "B32"):
        return trl_recipe(model_name, steps, workdir, bf16=False if recipe == "B32" else None)
    if recipe in ("C", "D"):
        return llmcourse_recipe(model_name, steps, workdir, lora=recipe == "D", compile=compile)
    if recipe in ("CM", "DM"):
        return llmcourse_recipe(model_name, steps, workdir, lora=recipe == "DM", compile=compile,
                                activation_checkpointing=True, divergence_rollback=False)
    if recipe in ("P", "R"):
        return plain_loop(model_name, steps, workdir, compiled=recipe == "R")
    raise SystemExit(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=list(RECIPES))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--compile", choices=["auto", "true", "false"], default="true",
                        help="TrainConfig.compile for C, D, CM and DM (default: true)")
    parser.add_argument("--out", required=True, help="JSON file for the result")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix=f"llmcourse-bench-{args.recipe}-"))
    start = time.perf_counter()
    try:
        result = run_recipe(args.recipe, args.model, args.steps, workdir, compile=args.compile)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.update(recipe=args.recipe, label=RECIPES[args.recipe], model=args.model, threads=torch.get_num_threads(),
                  wall_seconds=round(time.perf_counter() - start, 1))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
