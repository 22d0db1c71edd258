"""How results and costs scale: a learning curve over the number of training rows, and what finetuning a bigger
model needs in memory and compute (arithmetic from the parameter count, timed against this machine)."""
from __future__ import annotations

import pandas as pd

from llmcourse.core.errors import CourseError
from llmcourse.core.fastmode import sized
from llmcourse.training.config import TrainConfig
from llmcourse.training.schedules import count_steps
from llmcourse.training.trainer import train
from llmcourse.data.loading import load_instruction_data
from llmcourse.models.loading import prepare_bundled_model
from llmcourse.data.tokenization import tokenize_example
from llmcourse.core.hardware import matmul_gflops
from llmcourse.training.placement import resolve_precision
from llmcourse.training.cost import training_flops
from llmcourse.training.runs import round_loss

# Parameter counts from each model's config on the Hugging Face hub.
MODEL_SIZES = {"SmolLM2-135M (bundled)": 134.5e6, "SmolLM2-360M": 361.8e6, "SmolLM2-1.7B": 1.71e9,
               "Llama-3.1-8B": 8.03e9, "Llama-3.1-70B": 70.6e9}
BYTES_FULL = 16  # per parameter, fp32: weights 4 + gradients 4 + AdamW's two moments 8
BYTES_LORA = 4  # per parameter, fp32 frozen weights; the adapters and their optimizer state add little


def learning_curve(sizes=(24, 48, 96, 192), epochs: float = 2.0, *, seed: int = 42,
                   verbose: bool = True) -> pd.DataFrame:
    """One short LoRA run of the bundled model per training-set size, `epochs` passes each; the validation loss of each.

    The sets are nested (each size is the first rows of one seeded shuffle of the shipped training split), and every
    run is scored on the same held-out questions: the validation and test wordings of the facts the *smallest* set
    already contains. Every run shows those facts equally often (`epochs` times), so the curve cannot fall merely
    because a larger set covers more of the facts it is tested on: what it measures is what the other rows add.
    A larger set takes proportionally more steps. Fast mode: the first two sizes, 1 step each, 4 held-out questions.
    """
    sizes = sorted(int(n) for n in sizes)
    dd = load_instruction_data("kettlebird", verbose=False)
    pool = dd["train"].shuffle(seed=seed)
    if not sizes or sizes[0] < 1 or sizes[-1] > len(pool):
        raise CourseError(f"learning_curve(sizes={sizes}): give sizes from 1 to {len(pool)}, the shipped training rows.")
    common = set(pool.select(range(sizes[0]))["fact_id"])
    held_out = [{"prompt": r["prompt"], "completion": r["completion"]}
                for split in ("validation", "test") for r in dd[split] if r["fact_id"] in common]
    if verbose:
        print(f"{len(pool)} training rows in all; scored on {len(held_out)} held-out questions about the "
              f"{len(common)} facts the smallest set ({sizes[0]} rows) already contains")
    out = []
    for n in sized(sizes, sizes[:2]):
        rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in pool.select(range(n))]
        config = TrainConfig.laptop(num_train_epochs=epochs, max_steps=sized(-1, 1), eval_steps=0, save_model=False,
                                    max_eval_samples=sized(None, 4), seed=seed, run_name=f"05-curve-{n}rows")
        run = train(config, data={"train": rows, "validation": held_out}, verbose=False, plot=False, estimate=False)
        steps = count_steps(config, n)
        out.append({"rows": n, "steps": steps, "validation loss": round_loss(run.final_eval_loss), "run": run.name})
        if verbose:
            print(f"{n:5d} rows, {steps:3d} steps: validation loss {run.final_eval_loss:.3f}   runs/{run.name}")
    return pd.DataFrame(out)


def tokens_per_row(data="kettlebird", limit: int = 200) -> float:
    """Mean tokens per training example (chat template, question and answer) of `data`, with the bundled tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(prepare_bundled_model(verbose=False))
    rows = load_instruction_data(data, split="train", verbose=False).select(range(limit))
    lengths = [len(tokenize_example(r["prompt"], r["completion"], tokenizer)["input_ids"]) for r in rows]
    return sum(lengths) / len(lengths)


def finetune_cost(rows: int = 1000, tokens: float = 60.0, epochs: float = 3.0, gflops: float | None = None,
                  utilisation: float = 0.5, models: dict = MODEL_SIZES) -> pd.DataFrame:
    """Memory and compute to finetune each model on `rows` examples of `tokens` tokens for `epochs` passes.

    Memory: 16 bytes per parameter for full finetuning (fp32 weights, gradients, AdamW), 4 for LoRA (frozen fp32
    weights), before activations. Compute: training_flops, 6 x parameters x tokens. Hours: at `gflops`
    (measured on this machine when None) times `utilisation`, the share of the peak training reaches.
    """
    if gflops is None:
        gflops, kind = measured_gflops()
        print(f"measured on this machine: {gflops:,.0f} GFLOP/s ({kind} matrix products); the hours assume "
              f"training reaches {utilisation:.0%} of that")
    total_tokens = rows * tokens * epochs
    out = []
    for name, params in models.items():
        flop = training_flops(params, total_tokens)
        out.append({"model": name, "parameters (B)": round(params / 1e9, 3),
                    "full finetune memory (GB)": round(params * BYTES_FULL / 1e9, 1),
                    "LoRA memory (GB)": round(params * BYTES_LORA / 1e9, 1),
                    "compute (PFLOP)": round(flop / 1e15, 2),
                    "hours on this machine": round(flop / (gflops * 1e9 * utilisation) / 3600, 1)})
    return pd.DataFrame(out).set_index("model")


def measured_gflops() -> tuple[float, str]:
    """This machine's matrix-multiply speed in GFLOP/s and its precision: the one precision='auto' picks here."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision("auto", device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    if device.type == "cuda":
        return matmul_gflops(dtype, n=4096, device="cuda"), f"{precision}, GPU"
    return matmul_gflops(dtype), precision
