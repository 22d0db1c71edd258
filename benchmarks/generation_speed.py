"""Generation benchmark in this process: `python benchmarks/generation_speed.py --model M --questions N --out F.json`.

Greedy decoding with the KV cache, prompts left-padded, as evaluation does it (llmcourse.models.generation's own
loop, which drops finished rows from the batch; model.generate where that loop does not apply):
- tokens/s at batch 1 and at batch 16 on the same 16 held-out questions (only real answer tokens are
  counted: a row's tokens after its end-of-answer token are padding, however long the batch keeps going);
- the wall time to answer N held-out questions with llmcourse.generate at its default batch size, the
  evaluation's path.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from speedmeter import write_result


def answer_tokens(new_ids: torch.Tensor, stop_ids: set) -> list[int]:
    """Real generated tokens per row: up to and including the first stop token, nothing after it."""
    counts = []
    for row in new_ids.tolist():
        stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
        counts.append(len(row) if stop is None else stop + 1)
    return counts


@torch.inference_mode()
def timed_generate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> tuple[int, float]:
    """(real new tokens, seconds) for answering `prompts` in batches of `batch_size`, left-padded, KV cache on."""
    from llmcourse.models.generation import greedy_decode, plain_greedy, render_prompt, stop_ids as answer_end

    texts = [render_prompt(tokenizer, p) for p in prompts]
    tokenizer.padding_side = "left"
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} | set(
        [model.generation_config.eos_token_id] if isinstance(model.generation_config.eos_token_id, int)
        else model.generation_config.eos_token_id or [])
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        if plain_greedy(model):
            rows = greedy_decode(model, enc["input_ids"], enc["attention_mask"], max_new_tokens,
                                 answer_end(model, tokenizer))
            tokens += sum(len(row) for row in rows)  # each row ends at its stop token
            continue
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                             pad_token_id=tokenizer.pad_token_id)
        tokens += sum(answer_tokens(out[:, enc["input_ids"].shape[1]:], stop_ids))
    return tokens, time.perf_counter() - start


def measure(model_name: str, n_questions: int, max_new_tokens: int, batch: int = 16) -> dict:
    """Batch-1 vs batch-16 tokens/s on the same questions, and the time to answer n_questions held-out ones."""
    from llmcourse.data.loading import load_instruction_data
    from llmcourse.models.generation import auto_batch_size, generate
    from llmcourse.models.loading import load_model

    model, tokenizer = load_model(model_name)
    model.eval()
    questions = load_instruction_data("kettlebird", split="test", verbose=False)["prompt"]
    same = questions[:batch]
    timed_generate(model, tokenizer, same[:2], 2, 4)  # warm-up: first calls pay one-off setup costs
    t1, s1 = timed_generate(model, tokenizer, same, 1, max_new_tokens)
    t16, s16 = timed_generate(model, tokenizer, same, batch, max_new_tokens)
    asked = questions[:n_questions]
    start = time.perf_counter()
    answers = generate(model, tokenizer, asked, max_new_tokens=max_new_tokens)  # its default batch size
    answer_s = time.perf_counter() - start
    return {"batch1_tokens": t1, "batch1_seconds": round(s1, 2), "batch1_tokens_per_s": round(t1 / s1, 1),
            f"batch{batch}_tokens": t16, f"batch{batch}_seconds": round(s16, 2),
            f"batch{batch}_tokens_per_s": round(t16 / s16, 1), "batch": batch,
            "speedup": round((t16 / s16) / (t1 / s1), 2), "questions": len(asked), "answer_seconds": round(answer_s, 1),
            "answer_batch": auto_batch_size(model, 256 + max_new_tokens),
            "max_new_tokens": max_new_tokens, "empty_answers": sum(not a for a in answers)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", required=True, help="JSON file for the result")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = measure(args.model, args.questions, args.max_new_tokens)
    result.update(recipe="G", label="generation (greedy, KV cache, left padding)", model=args.model,
                  threads=torch.get_num_threads(), wall_seconds=round(time.perf_counter() - start, 1))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
