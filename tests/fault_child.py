"""A fork server for tests/test_fault_injection.py: real `python -m llmcourse train` processes, killed at chosen points.

It imports the course once (that takes seconds), then reads one job per line on stdin (JSON) and runs each in a
forked process, which runs the real command line (llmcourse.cli.main.main) and answers one JSON line on stdout.
A job may carry a fault: {"at": N, "signal": "KILL" | "INT" | "TERM"}. The forked process counts the events of its
run as they happen (each training step, and each write, file rename and file opened for writing in the run store,
labelled with the phase: steps, checkpoint or final save) and sends itself the signal at the Nth. A KILL "after" a
file write first cuts that file to half its size, as a kill in the middle of writing it would. A job without a fault
can write the list of its events (calibration), so the test can pick points from it; a job {"load": folder} loads a
run's model with load_model. Each job trains on one thread: two cores shared with other tests stay usable.

The hooks live here, in the test's own process, never in the product code.
"""
from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import select
import signal
import sys
from pathlib import Path

import datasets  # noqa: F401  (imported once here, not in every job)
import peft  # noqa: F401
import safetensors.torch
import torch
import transformers

import llmcourse.cli.main as cli
import llmcourse.training.trainer as course_trainer
from llmcourse.models.loading import load_model
from llmcourse.plots import figures  # noqa: F401  (matplotlib: imported once here, not in every job)


class Faults:
    def __init__(self, root: Path, fault: dict | None, events_file: str | None, fired_file: str | None):
        self.root, self.fault, self.events_file, self.fired_file = root, fault, events_file, fired_file
        self.count, self.phase, self.events = 0, "steps", []

    def mine(self, path) -> bool:
        try:
            return Path(os.fsdecode(path)).absolute().is_relative_to(self.root)
        except (TypeError, ValueError):
            return False

    def event(self, kind: str, path=None, written=False) -> None:
        self.count += 1
        where = os.path.relpath(os.fsdecode(path), self.root) if path is not None else None
        self.events.append({"at": self.count, "phase": self.phase, "kind": kind, "path": where})
        if self.fault and self.count == self.fault["at"]:
            self.fire(written and path)

    def fire(self, written_path) -> None:
        sig = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}[self.fault["signal"]]
        cut = bool(sig == signal.SIGKILL and written_path and os.path.isfile(written_path))
        if cut:  # os.truncate opens nothing, so it is not an event of its own
            os.truncate(written_path, os.path.getsize(written_path) // 2)
        Path(self.fired_file).write_text(json.dumps({**self.events[-1], "cut": cut}))
        if sig == signal.SIGKILL:
            os.kill(os.getpid(), signal.SIGKILL)
        signal.raise_signal(sig)  # the course's handler runs now, as it would for a real Ctrl-C or kill

    def save_events(self) -> None:
        if self.events_file:
            Path(self.events_file).write_text(json.dumps(self.events))


def wrap_write(faults: Faults, original, path_arg: int):
    def wrapper(*args, **kw):
        path = args[path_arg] if len(args) > path_arg else kw.get("filename", kw.get("f"))
        if not isinstance(path, (str, os.PathLike)) or not faults.mine(path):
            return original(*args, **kw)
        faults.event("write", path)
        result = original(*args, **kw)
        faults.event("written", path, written=True)
        return result
    return wrapper


def replace_everywhere(original, replacement) -> None:
    """Point every module's name for `original` (torch.save, safetensors' save_file) at `replacement`."""
    for module in list(sys.modules.values()):
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if value is original:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(module, name, replacement)


def in_phase(faults: Faults, phase: str, original):
    def wrapper(*args, **kw):
        before, faults.phase = faults.phase, phase
        try:
            return original(*args, **kw)
        finally:
            faults.phase = before
    return wrapper


def install(faults: Faults) -> None:
    step = transformers.Trainer.training_step

    def training_step(self, *args, **kw):
        faults.event("step")
        return step(self, *args, **kw)

    transformers.Trainer.training_step = training_step
    transformers.Trainer._save_checkpoint = in_phase(faults, "checkpoint", transformers.Trainer._save_checkpoint)
    course_trainer._save_run = in_phase(faults, "final", course_trainer._save_run)
    replace_everywhere(torch.save, wrap_write(faults, torch.save, 1))
    replace_everywhere(safetensors.torch.save_file, wrap_write(faults, safetensors.torch.save_file, 1))
    rename = os.replace

    def replace(src, dst, *args, **kw):
        if not faults.mine(dst):
            return rename(src, dst, *args, **kw)
        faults.event("rename", dst)
        return rename(src, dst, *args, **kw)

    os.replace = replace

    def audit(name, args):  # every file opened for writing in the run store (json, csv, png, the atomic temp files)
        if name == "open" and args[0] is not None and not isinstance(args[0], int) and faults.mine(args[0]):
            mode, flags = args[1], args[2]
            if (mode and any(c in mode for c in "wax+")) or (not mode and flags & (os.O_WRONLY | os.O_RDWR)):
                faults.event("open", args[0])

    sys.addaudithook(audit)


def job(spec: dict) -> None:
    """In the forked process: run one command line with its fault, then end with its exit code."""
    log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), write_through=True)
    faults = Faults(Path(os.environ["LLMCOURSE_RUNS"]).absolute(), spec.get("fault"), spec.get("events"),
                    spec.get("fired"))
    install(faults)
    code = 1
    try:
        if spec.get("load"):  # load_model(run folder), as a learner would after the kill
            load_model(spec["load"])
            code = 0
        else:
            code = cli.main(spec["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        faults.save_events()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """Jobs run side by side (the test keeps two going, one per core); each answer names its job."""
    gc.freeze()  # what the server imported is never collected: each job's gc.collect() skips it
    out, running, pending, reading = sys.stdout, {}, b"", True
    print(json.dumps({"ready": True}), file=out, flush=True)
    while reading or running:
        if select.select([0] if reading else [], [], [], 0.05)[0]:
            chunk = os.read(0, 1 << 16)
            reading, pending = bool(chunk), pending + chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                spec = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    job(spec)
                running[pid] = spec["id"]
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)  # -9 for a SIGKILL, as subprocess reports it
            print(json.dumps({"id": running.pop(pid), "returncode": code}), file=out, flush=True)


if __name__ == "__main__":
    serve()
