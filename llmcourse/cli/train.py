"""`python -m llmcourse train`: the same TrainConfig as the notebook, as command-line flags.

Every TrainConfig field becomes a flag through transformers' HfArgumentParser, with the field's help text:
--learning-rate (or --learning_rate), --lora / --no-lora. Runs unchanged under `torchrun --nproc_per_node N -m
llmcourse train ...` and `accelerate launch -m llmcourse train ...` (data parallel: every process trains on its
share of each batch; only rank 0 prints and saves).
"""
from __future__ import annotations

import argparse
import dataclasses
import typing

from llmcourse.training.config import TrainConfig, config_from_args, optional_parser

OPTIONAL_FIELDS = {name for name, hint in typing.get_type_hints(TrainConfig).items() if type(None) in typing.get_args(hint)}


def parents() -> list[argparse.ArgumentParser]:
    """The parsers whose flags this command inherits (argparse's parents=): one flag per TrainConfig field."""
    from transformers import HfArgumentParser

    return [HfArgumentParser(TrainConfig, add_help=False)]


def add_arguments(parser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter  # each flag's help ends with its default
    for action in parser._actions:
        action.option_strings.sort(key=lambda s: "_" in s)  # --learning-rate first in --help, as the README writes it
        if action.dest in OPTIONAL_FIELDS:  # --max-eval-samples None means "all", as TrainConfig(None) does
            action.type = optional_parser(action.type)
    for f in dataclasses.fields(TrainConfig):
        if f.default is False:  # HfArgumentParser adds --no-X only for fields that default to True
            parser.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                                help=f"the opposite of --{f.name.replace('_', '-')}")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN",
                        help="continue a stopped run from its last checkpoint: --resume RUN names it (a run name, "
                             "name prefix or folder; its saved settings are used), --resume alone continues the "
                             "newest run with exactly these settings (or the one in --output-dir)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run of the same name (--run-name / --output-dir) instead of keeping both")
    parser.add_argument("--quiet", action="store_true", help="no cost estimate, tokenization report or progress bar")


def run(args) -> int:
    from llmcourse.training.placement import rank
    from llmcourse.training.trainer import train

    named = isinstance(args.resume, str)  # --resume RUN: that run's own settings
    config = None if named else config_from_args(args)
    result = train(config, resume=args.resume, overwrite=args.overwrite, verbose=not args.quiet)
    if rank() == 0:
        s = result.summary()
        print(f"{s['run']}: {s['status']} after {s['steps']} steps in {s['minutes']} min "
              f"({s['tokens/s']} tokens/s, {s['precision']}); train loss {s['train loss']}, eval loss {s['eval loss']}")
        if args.quiet and result.message:  # otherwise train() has said it already
            print(result.message)
        if (result.path / "model").is_dir():
            print(f"saved in {result.path}  (load it with: llmcourse.load_model({str(result.path)!r}))")
        else:
            print(f"its folder: {result.path} (no model/ was saved)")
    return 0 if result.status in ("finished", "stopped") else 1
