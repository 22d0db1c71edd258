"""run_cli: the course's command line from a notebook, as its own process with an argument list (no shell).

An argument list survives spaces and quotes in paths on every OS, where `!{sys.executable} ...` in a notebook
builds a shell command from strings and breaks on them (e.g. on Windows, under "C:\\Users\\Ann Lee").
"""
from __future__ import annotations

import os
import subprocess
import sys

from llmcourse.core.errors import CourseError


def run_cli(args: list[str], check: bool = True) -> int:
    """Run `python -m llmcourse <args>` with this kernel's Python, print its output as it comes, return its exit code.

    check=True turns a non-zero exit code into a CourseError that names the command (its own message is printed above).
    """
    if isinstance(args, str):
        raise CourseError(f"run_cli takes a list of arguments, e.g. run_cli(['runs']), not the string {args!r}.")
    command = [sys.executable, "-m", "llmcourse", *map(str, args)]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                          errors="replace", env=env) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
    if check and process.returncode != 0:
        shown = " ".join(command[1:])
        raise CourseError(f"`python {shown}` exited with code {process.returncode}: its output above says why.")
    return process.returncode
