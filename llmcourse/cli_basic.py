"""The `prepare` and `generate` commands."""
from __future__ import annotations

import time


def add_prepare_arguments(p):
    p.add_argument("--force", action="store_true", help="prepare again even if the cache is there")


def run_prepare(args) -> int:
    from .models import bundled_model_dir, bundled_model_ready, prepare_bundled_model

    if bundled_model_ready() and not args.force:
        print(f"Bundled model ready: {bundled_model_dir()}")
        return 0
    prepare_bundled_model(force=args.force)
    return 0


def add_generate_arguments(p):
    p.add_argument("prompt", nargs="+", help="the prompt (several prompts are answered as one batch)")
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="bundled name, 'tiny-random', a local folder or run, or a hub id")
    p.add_argument("--max-new-tokens", type=int, default=64, help="upper bound on the answer length, in tokens")
    p.add_argument("--no-chat", action="store_true", help="send the raw prompt, without the chat template")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def run_generate(args) -> int:
    from .cli import check_positive
    from .generation import generate
    from .models import load_model

    check_positive(args, "max_new_tokens")
    t0 = time.time()
    model, tok = load_model(args.model, device=args.device)
    t1 = time.time()
    prompts = args.prompt if len(args.prompt) > 1 else args.prompt[0]
    answers = generate(model, tok, prompts, max_new_tokens=args.max_new_tokens, chat=False if args.no_chat else None)
    for a in [answers] if isinstance(answers, str) else answers:
        print(a)
    print(f"({args.model}: loaded in {t1 - t0:.1f} s, answered in {time.time() - t1:.1f} s)", flush=True,
          file=__import__("sys").stderr)
    return 0
