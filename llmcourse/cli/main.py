"""`python -m llmcourse <command>`: the course's command line.

Every command has the same shape: a module `llmcourse/cli/<command>.py` with `add_arguments(parser)` and
`run(args) -> int` (and optionally `parents()`, parsers whose flags it inherits), listed once in COMMANDS below. The command modules import the library inside `run`, so
building the parser stays quick and `doctor` works even when a heavy package is broken.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from llmcourse.core.errors import CourseError, cli_hints
from llmcourse.core.malloc import restart_tuned

# command -> (module under llmcourse/cli/, one-line help)
COMMANDS = {
    "doctor": ("doctor", "check the environment: Python, packages, kernel, device, disk, RAM, model"),
    "prepare": ("prepare", "prepare the bundled model once (GGUF -> safetensors cache)"),
    "generate": ("generate", "answer a prompt with a model (bundled by default)"),
    "data": ("data", "inspect or convert instruction data"),
    "train": ("train", "finetune a model (full or LoRA) and save the run under runs/"),
    "eval": ("eval", "evaluate a model or run on the course questions"),
    "runs": ("runs", "list, show, delete or prune the saved runs"),
    "export": ("export", "write a run as a GGUF file for llama.cpp and Ollama, with a Modelfile"),
    "bench": ("bench", "benchmark training and generation speed against the peers"),
    "check-course": ("check_course", "execute every notebook (instructors, before a workshop)"),
    "bundle": ("bundle", "download every wheel a room needs to set up offline (instructors)"),
}


def build_parser(commands=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llmcourse", description="llmcourse: finetuning LLMs, offline, on a laptop.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in (commands or COMMANDS).items():
        mod = importlib.import_module(f"llmcourse.cli.{module}")
        parents = mod.parents() if hasattr(mod, "parents") else []
        p = sub.add_parser(name, help=help_text, description=help_text, parents=parents)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    _add_debug(parser, default=False)
    return parser


def _add_debug(parser, default) -> None:
    """`--debug` on the top parser and on every command's parser, so it works before or after the command."""
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of an unexpected error (default: one line)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():  # SUPPRESS: a command's parser keeps a --debug given before it
                _add_debug(sub, argparse.SUPPRESS)


def _command(args) -> str:
    """The command as typed, e.g. 'data inspect', for the one-line error."""
    return " ".join(filter(None, (args.command, getattr(args, "data_command", None))))


def main(argv=None) -> int:
    if argv is None:  # the real command line: start again with the allocator setting training needs (malloc.py)
        restart_tuned()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        with cli_hints():
            return int(args._run(args) or 0)
    except CourseError as e:  # the user's input or environment: what was wrong and what to do, already said
        if args.debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head`): nothing left to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as e:  # a fault nobody foresaw: one line, the traceback only on request
        if args.debug:
            traceback.print_exc()
            return 1
        what = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"error: {_command(args)} failed: {type(e).__name__}{': ' + what if what else ''} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
