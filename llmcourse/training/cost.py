"""Cost before you run: time and memory of a training run, from one measured step and a FLOPs count."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from llmcourse.training.config import eval_interval, eval_points
from llmcourse.training.callbacks import keeps_weight_copy
from llmcourse.training.compiling import decide
from llmcourse.training.schedules import count_steps

WARN_MINUTES = 10


def training_flops(params: float, tokens: float, *, lora: bool = False, recompute: bool = False) -> float:
    """FLOPs to train `params` parameters on `tokens` tokens: 6 per parameter and token (forward 2, backward 4),
    4 with LoRA (frozen weights need no weight gradients), 2 more with activation checkpointing (the forward
    runs again in the backward pass)."""
    return ((4 if lora else 6) + (2 if recompute else 0)) * params * tokens


def mfu(params: float, tokens_per_s: float, peak_gflops: float) -> float:
    """Model-FLOPs utilisation: 6 x parameters x tokens per second, as a share of a peak in GFLOP/s."""
    return training_flops(params, tokens_per_s) / (peak_gflops * 1e9)


@dataclass
class CostEstimate:
    """What a run will cost on this machine, measured on one real batch before training starts."""
    steps: int
    tokens: int
    seconds_per_step: float
    train_minutes: float
    eval_minutes: float
    tflop: float
    gflop_per_second: float
    memory_gb: dict
    free_memory_gb: float
    precision: str
    device: str
    lora: bool
    compile: bool = False
    compile_reason: str = ""

    @property
    def minutes(self) -> float:
        return self.train_minutes + self.eval_minutes

    def to_dict(self) -> dict:
        return asdict(self)

    def warnings(self) -> list[str]:
        """Advice when the run will be long or will not fit in memory."""
        out = []
        if self.minutes > WARN_MINUTES:
            fit = max(1, int(WARN_MINUTES * 60 / self.seconds_per_step))
            tips = [] if self.lora else ["LoRA (lora=True) trains faster and needs far less memory"]
            tips += [f"fewer steps (max_steps={fit} fits in {WARN_MINUTES} min)", "a subset (max_train_samples=...)"]
            out.append(f"This run will take about {self.minutes:.0f} minutes on this {self.device}. "
                       f"To experiment quickly try: {'; '.join(tips)}.")
        if self.memory_gb["total"] > self.free_memory_gb:
            out.append(f"It needs about {self.memory_gb['total']:.1f} GB but only {self.free_memory_gb:.1f} GB are free: "
                       "use LoRA, activation_checkpointing=True, a smaller per_device_train_batch_size (with "
                       "gradient_accumulation_steps) or max_length.")
        return out

    def __str__(self) -> str:
        m = self.memory_gb
        lines = [
            f"Cost estimate ({self.precision} on {self.device}, one step measured):",
            f"  {self.steps} steps, {self.tokens:,} tokens, {self.seconds_per_step:.2f} s per step"
            f" -> about {self.train_minutes:.1f} min of training + {self.eval_minutes:.1f} min of evaluation",
            f"  compute: {self.tflop:.1f} TFLOP at a measured {self.gflop_per_second:.0f} GFLOP/s",
            f"  memory: about {m['total']:.1f} GB (weights {m['weights']:.2f}, gradients {m['gradients']:.2f}, "
            f"optimizer {m['optimizer']:.2f}, rollback copy {m['rollback_copy']:.2f}, activations "
            f"{m['activations']:.2f}); {self.free_memory_gb:.0f} GB free",
        ] + ([f"  compile: {self.compile_reason}"] if self.compile_reason else [])
        return "\n".join(lines + [f"  ! {w}" for w in self.warnings()])


def _autocast(device: torch.device, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _free_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] / 1e9
    import psutil

    return psutil.virtual_memory().available / 1e9


def _time_one_pass(trainer, model, batch, device, precision) -> float:
    start = time.perf_counter()
    with _autocast(device, precision):
        loss = trainer.compute_loss(model, batch)  # the training's own loss path (logits only where labelled)
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def estimate_cost(trainer, config, precision: str, verbose: bool = True) -> CostEstimate:
    """Time one forward+backward pass on a real batch (twice; the first warms up), then scale to the whole run.

    FLOPs: training_flops. Memory: fp32 weights, fp32 gradients and AdamW's two moments for the
    trainable weights, the divergence guard's copy of them, plus the activations measured during the pass.
    """
    import psutil

    model, ds, args = trainer.model, trainer.train_dataset, trainer.args
    device = next(model.parameters()).device
    steps = count_steps(config, len(ds), args.world_size)
    lengths = [len(ids) for ids in ds[: min(len(ds), 512)]["input_ids"]]
    mean_len = sum(lengths) / len(lengths)
    rows_per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps * args.world_size
    tokens = int(steps * rows_per_step * mean_len)
    batch = trainer.data_collator([ds[i] for i in range(min(config.per_device_train_batch_size, len(ds)))])
    batch = {k: v.to(device) for k, v in batch.items()}

    was_training = model.training
    rss0 = psutil.Process().memory_info().rss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # leave the run's RNG untouched
        model.train()
        _time_one_pass(trainer, model, batch, device, precision)
        seconds = _time_one_pass(trainer, model, batch, device, precision)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    activations = ((torch.cuda.max_memory_allocated(device) - base) if device.type == "cuda"
                   else max(psutil.Process().memory_info().rss - rss0, 0))

    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flop_per_token = training_flops(n_params, 1, lora=config.lora, recompute=config.activation_checkpointing)
    batch_tokens = int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    step_seconds = seconds * config.gradient_accumulation_steps * 1.1  # + optimizer update and bookkeeping
    n_evals = len(eval_points(eval_interval(config.eval_steps, steps), steps)) if trainer.eval_dataset is not None else 0
    eval_tokens = n_evals * len(trainer.eval_dataset or []) * mean_len
    param_bytes = next(model.parameters()).element_size()
    copied = trainable if keeps_weight_copy(trainable, config.divergence_rollback) else 0
    memory = {"weights": n_params * param_bytes / 1e9, "gradients": trainable * 4 / 1e9,
              "optimizer": trainable * 8 / 1e9, "rollback_copy": copied * 4 / 1e9, "activations": activations / 1e9}
    memory["total"] = sum(memory.values())
    est = CostEstimate(
        steps=steps, tokens=tokens, seconds_per_step=step_seconds, train_minutes=steps * step_seconds / 60,
        eval_minutes=eval_tokens / max(batch_tokens, 1) * seconds / 3 / 60,  # a forward pass is ~1/3 of fwd+bwd
        tflop=flop_per_token * tokens / 1e12, gflop_per_second=flop_per_token * batch_tokens / seconds / 1e9,
        memory_gb={k: round(v, 3) for k, v in memory.items()}, free_memory_gb=round(_free_memory_gb(device), 1),
        precision=precision, device=device.type, lora=config.lora)
    chosen = decide(config.compile, device, steps=steps, seconds_per_step=step_seconds, model=model,
                    method=config.method, precision=precision, distributed=args.world_size > 1)
    est.compile, est.compile_reason = chosen.compile, chosen.reason
    if verbose:
        print(est, flush=True)
    return est
