"""`python -m llmcourse train`: the same TrainConfig as the notebook, as command-line flags.

Runs unchanged under `torchrun --nproc_per_node N -m llmcourse train ...` and `accelerate launch -m llmcourse
train ...` (data parallel: every process trains on its share of each batch; only rank 0 prints and saves).
"""
from __future__ import annotations

import os

from .config import add_config_arguments, config_from_args


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN",
                        help="continue a stopped run from its last checkpoint: --resume RUN names it (a run name, "
                             "name prefix or folder; its saved settings are used), --resume alone continues the "
                             "newest run with exactly these settings (or the one in --output-dir)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run of the same name (--run-name / --output-dir) instead of keeping both")
    parser.add_argument("--quiet", action="store_true", help="no cost estimate, tokenization report or progress bar")


def run(args) -> int:
    from .train import train

    named = isinstance(args.resume, str)  # --resume RUN: that run's own settings
    config = None if named else config_from_args(args)
    result = train(config, resume=args.resume, overwrite=args.overwrite, verbose=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        s = result.summary()
        print(f"{s['run']}: {s['status']} after {s['steps']} steps in {s['minutes']} min "
              f"({s['tokens/s']} tokens/s, {s['precision']}); train loss {s['train loss']}, eval loss {s['eval loss']}")
        print(f"saved in {result.path}  (load it with: llmcourse.load_model({str(result.path)!r}))")
    return 0 if result.status in ("finished", "stopped") else 1
