"""`python -m llmcourse generate PROMPT ...`: answer prompts with a model (the bundled one by default)."""
from __future__ import annotations

import sys
import time

from llmcourse.cli.shared import check_positive, resolve_model
from llmcourse.core.paths import BUNDLED


def add_arguments(p) -> None:
    p.add_argument("prompt", nargs="+", help="the prompt (several prompts are answered as one batch)")
    p.add_argument("--model", default=BUNDLED, help="bundled name, 'tiny-random', a run (runs/<name> or just <name>), a model folder, or a hub id")
    p.add_argument("--max-new-tokens", type=int, default=64, help="upper bound on the answer length, in tokens")
    p.add_argument("--no-chat", action="store_true", help="send the raw prompt, without the chat template")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def run(args) -> int:
    from llmcourse.models.generation import generate  # torch loads only when a command needs it
    from llmcourse.models.loading import load_model
    from llmcourse.training.runs import run_model

    check_positive(args, "max_new_tokens")
    t0 = time.time()
    target, saved = resolve_model(args.model)  # a run by name works too
    model, tok = run_model(saved, device=args.device) if saved else load_model(target, device=args.device)
    t1 = time.time()
    prompts = args.prompt if len(args.prompt) > 1 else args.prompt[0]
    answers = generate(model, tok, prompts, max_new_tokens=args.max_new_tokens, chat=False if args.no_chat else None)
    for a in [answers] if isinstance(answers, str) else answers:
        print(a)
    print(f"({args.model}: loaded in {t1 - t0:.1f} s, answered in {time.time() - t1:.1f} s)", flush=True,
          file=sys.stderr)
    return 0
