"""`python -m llmcourse bench`: training and generation speed against the peers, each run in its own process."""
from __future__ import annotations

from pathlib import Path

from llmcourse.core.paths import BUNDLED
from llmcourse.course.bench import DEFAULT_RUNS, EXTRA_RUNS


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=BUNDLED, help="model for every run (default: the bundled one)")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per training run (default: 8)")
    parser.add_argument("--only", nargs="+", choices=[*DEFAULT_RUNS, *EXTRA_RUNS], metavar="RUN",
                        help="runs to do: A (original course), B (TRL defaults), C (llmcourse full), D (llmcourse LoRA), "
                             "R (the fastest plain loop: compiled, bf16 where native), G (generation); extra: B32 "
                             "(TRL in fp32), P (plain loop, eager), CM and DM (C and D with activation "
                             "checkpointing, CM also without the rollback copy). Default: A B C D R G")
    parser.add_argument("--compile", choices=["auto", "true", "false"], default="true",
                        help="TrainConfig.compile for C, D, CM and DM (default: true; auto decides as a real run "
                             "would, and a run of a few steps does not pay back compiling)")
    parser.add_argument("--questions", type=int, default=100, help="held-out questions to answer in G (default: 100)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="answer length limit in G (default: 64)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON report "
                        "(default: runs/bench-<date>.json)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which one run is stopped")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: PyTorch's choice, "
                        "one per physical core); 1 keeps a shared, busy machine from stalling the runs' thread teams")


def run(args) -> int:
    from llmcourse.course.bench import benchmark

    return benchmark(args.only, model=args.model, steps=args.steps, questions=args.questions,
                     max_new_tokens=args.max_new_tokens, json_path=args.json, timeout=args.timeout, threads=args.threads,
                     compile=args.compile)
