"""Run records: what a training run did (config, loss history, timing, paths), saved under runs/<name>/ to compare later.

A run folder holds train_config.json, run.json (status, timing, precision, ...), history.json and history.csv
(one row per logged step), loss.png, model/ (the final model or LoRA adapter) and checkpoints/.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from llmcourse.training.config import TrainConfig
from llmcourse.core.errors import CourseError
from llmcourse.core.paths import BUNDLED, repo_root
from llmcourse.plots.figures import plot_history

HISTORY_COLUMNS = ("step", "epoch", "tokens", "seconds", "learning_rate", "loss", "grad_norm", "eval_loss")


def runs_dir() -> Path:
    """Where runs are saved: $LLMCOURSE_RUNS, else <repo>/runs in a checkout (notebooks and CLI share it), else ./runs."""
    env = os.environ.get("LLMCOURSE_RUNS")
    if env:
        return Path(env).expanduser()
    return (repo_root() or Path.cwd()) / "runs"


@dataclass
class Run:
    """One training run: its config, per-step history, outcome and where its files are."""
    config: TrainConfig
    path: Path
    history: list = field(default_factory=list, repr=False)  # rows with HISTORY_COLUMNS keys (None = not logged)
    status: str = "running"  # running | finished | stopped | diverged | interrupted | crashed | died
    message: str = ""
    precision: str = "fp32"
    device: str = "cpu"
    seconds: float = 0.0
    tokens: int = 0
    trainable_params: int = 0
    total_params: int = 0
    peak_memory_mb: float | None = None
    estimate: dict | None = None
    compiled: bool = False  # layers ran through torch.compile (TrainConfig.compile)
    compile_seconds: float | None = None  # time torch spent compiling during the run
    best_checkpoint: str | None = None
    started: str | None = None  # local time the run started, ISO format: orders runs, "latest" means newest
    pid: int | None = None  # the process training it, while it is "running" (kept when it died)
    host: str | None = None  # the machine of that process (a store may be shared), and when the process started:
    pid_started: float | None = None  # a PID reused by another process later is not mistaken for it
    model: object = field(default=None, repr=False, compare=False)  # trained model in memory; None in low-memory mode
    tokenizer: object = field(default=None, repr=False, compare=False)
    session: object = field(default=None, repr=False, compare=False)  # while prepared and fitting: the Trainer etc.

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def losses(self, key: str = "loss") -> list[tuple[int, float]]:
        """(step, value) pairs of the training loss, or of "eval_loss"."""
        return [(r["step"], r[key]) for r in self.history if r.get(key) is not None]

    @property
    def final_loss(self) -> float | None:
        """Mean training loss over the last 10% of logged steps (one step alone is noisy)."""
        values = [v for _, v in self.losses()]
        if not values:
            return None
        tail = values[-max(1, len(values) // 10):]
        return sum(tail) / len(tail)

    @property
    def final_eval_loss(self) -> float | None:
        values = self.losses("eval_loss")
        return values[-1][1] if values else None

    def frame(self):
        """The history as a pandas DataFrame, one row per step."""
        import pandas as pd

        return pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS))

    def summary(self) -> dict:
        """One row for the compare table."""
        return {"run": self.name, "status": self.status, "lr": self.config.learning_rate,
                "method": self.config.method.replace("lora-r", "LoRA r="),
                "steps": self.history[-1]["step"] if self.history else 0, "train loss": round_loss(self.final_loss),
                "eval loss": round_loss(self.final_eval_loss), "minutes": round(self.seconds / 60, 2),
                "tokens/s": round(self.tokens_per_second), "precision": self.precision,
                "trainable params": self.trainable_params,
                "memory GB (est.)": self.estimate["memory_gb"]["total"] if self.estimate else None}

    @property
    def died(self) -> bool:
        """Its process ended without finishing it (killed, or the machine restarted): recorded as died, or still as
        running with its process gone."""
        return self.status == "died" or (self.status == "running" and not still_training(self.__dict__))

    def save(self) -> None:
        """Write train_config.json, run.json, history.json and history.csv, each complete or not at all."""
        self.path.mkdir(parents=True, exist_ok=True)
        running = self.status == "running"
        self.pid, self.host, self.pid_started = (os.getpid(), socket.gethostname(), _started_at(os.getpid())) \
            if running else (None, None, None)
        write_atomic(self.path / "train_config.json", json.dumps(self.config.to_dict(), indent=2))
        write_atomic(self.path / "history.json", json.dumps(self.history))
        write_atomic(self.path / "history.csv", self.frame().to_csv(index=False))
        record = {"format": FORMAT, **{k: getattr(self, k) for k in RECORD_FIELDS}}
        write_atomic(self.path / RECORD, json.dumps(record, indent=2))  # last: the record vouches for the rest

    def plot(self, **kw):
        """Loss (raw + smoothed, eval) and learning rate of this run."""
        return plot_history(self, **kw)

    def __repr__(self) -> str:
        s = self.summary()
        return (f"Run({s['run']!r}: {s['status']}, {s['method']}, lr {s['lr']:g}, {s['steps']} steps, train loss "
                f"{s['train loss']}, eval loss {s['eval loss']}, {s['minutes']} min, {s['tokens/s']} tokens/s)")

    def _repr_html_(self) -> str:
        s = self.summary()
        return (f"<b>Run {s['run']}</b> ({s['status']}): {s['method']}, lr {s['lr']:g}, {s['steps']} steps, "
                f"train loss {s['train loss']}, eval loss {s['eval loss']}, {s['minutes']} min, "
                f"{s['tokens/s']} tokens/s, {s['precision']}. {self.message}")


def round_loss(x: float | None) -> float | None:
    """A loss as records and tables show it: 4 digits; None for None, NaN or inf."""
    return None if x is None or not math.isfinite(x) else round(x, 4)


RECORD = "run.json"  # the course's record of a run: a folder is deleted only when this proves the course made it
FORMAT = "llmcourse-run/1"  # the record's marker, written first in every run.json
RECORD_FIELDS = ("status", "message", "precision", "device", "seconds", "tokens", "trainable_params", "total_params",
                 "peak_memory_mb", "estimate", "compiled", "compile_seconds", "best_checkpoint", "started", "pid",
                 "host", "pid_started")
STAMP = "%m%d-%H%M%S"  # appended to a default run name, so running the same cell twice keeps both runs


def write_atomic(path: Path, text: str) -> None:
    """Write a file under a temporary name, then rename it: a kill or a full disk leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _started_at(pid) -> float | None:
    try:
        return psutil.Process(int(pid)).create_time()
    except (psutil.Error, ValueError, TypeError, OverflowError):
        return None


def still_training(record: dict) -> bool:
    """Whether the process a "running" record names is still at it: on another machine (a shared store) that
    cannot be told, so yes; here, only while that very process lives (not a zombie, not a later one with its PID)."""
    if record.get("host") and record["host"] != socket.gethostname():
        return True
    if not process_alive(record.get("pid")):
        return False
    try:
        process = psutil.Process(int(record["pid"]))
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started = record.get("pid_started")
        return started is None or abs(process.create_time() - started) < 1.0
    except (psutil.Error, ValueError, TypeError, OverflowError):
        return True  # exists, but cannot be inspected (another user's): as process_alive says


def refuse_if_training(path: Path, what: str) -> None:
    """One line instead of two processes in one run folder: resuming or replacing a run that trains right now."""
    try:
        record = json.loads((Path(path) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and record.get("status") == "running" and still_training(record):
        raise CourseError(f"{Path(path).name} is training right now (process {record.get('pid')}): {what} it once it "
                          "has stopped (Stop button, Ctrl-C), or choose another run_name.")


def process_alive(pid) -> bool:
    """Whether a process with this id runs on this machine (False for None)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return isinstance(pid, int) and pid > 0
    return True


def is_run(path) -> bool:
    """Whether `path` holds a run record (listed, and read with a clear message if it is damaged)."""
    return (Path(path) / RECORD).is_file()


def made_by_the_course(path) -> bool:
    """Whether `path` is a run folder the course wrote: its run.json carries the course's marker (or, from before the
    marker, exactly the course's fields) beside a train_config.json. Only such a folder is ever deleted."""
    path = Path(path)
    try:
        record = json.loads((path / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or not (path / "train_config.json").is_file():
        return False
    return record.get("format") == FORMAT or ("format" not in record and {"status", "started", "tokens"} <= set(record)
                                               and set(record) <= set(RECORD_FIELDS))


def run_folders(folder=None) -> list[Path]:
    """The run folders in runs_dir() (or `folder`), oldest first (by start time)."""
    root = Path(folder) if folder else runs_dir()
    found = [p for p in root.iterdir() if is_run(p)] if root.is_dir() else []
    return sorted(found, key=_started)


def _started(path: Path) -> str:
    try:
        started = json.loads((path / RECORD).read_text()).get("started")
    except (OSError, ValueError, AttributeError):
        started = None
    return started or datetime.fromtimestamp((path / RECORD).stat().st_mtime).isoformat()


def find_run(name_or_path) -> Path:
    """A run's folder from its path, its exact name in runs_dir(), or the start of its name (the newest match)."""
    p = Path(name_or_path).expanduser()
    if is_run(p):
        return p
    if str(name_or_path) and len(p.parts) == 1 and not p.is_absolute():
        if is_run(runs_dir() / p):  # an exact name wins over newer runs that merely start with it
            return runs_dir() / p
        matches = [f for f in run_folders() if f.name.startswith(str(name_or_path))]
        if matches:
            return matches[-1]
    known = ", ".join(f.name for f in run_folders()[-8:]) or "none yet"
    raise CourseError(f"No run {str(name_or_path)!r}: it is neither a run folder nor the name (or start of a name) of "
                      f"a run in {runs_dir()}. Newest runs there: {known} (`python -m llmcourse runs` lists them all).")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CourseError(f"{path} is missing: the run record is incomplete. Delete the folder "
                          f"{path.parent} if you no longer need it.") from None
    except (ValueError, UnicodeDecodeError) as e:
        where = f", line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise CourseError(f"{path}{where}: not valid JSON, the run record is damaged. Restore it, or delete the "
                          f"folder {path.parent} if you no longer need it.") from None


def saved_config(path: Path) -> dict | None:
    """A run folder's saved settings (train_config.json) as a dict; None when missing or damaged."""
    try:
        return _read_json(Path(path) / "train_config.json")
    except CourseError:
        return None


def load_run(name_or_path) -> Run:
    """A saved run back from disk (survives kernel restarts), by folder, name or name prefix: load_run("lora-r64")."""
    path = find_run(name_or_path)
    record = _read_json(path / RECORD)
    config = _read_json(path / "train_config.json")
    if not isinstance(record, dict) or not isinstance(config, dict):
        raise CourseError(f"{path}: run.json and train_config.json must each hold a JSON object; the run record is "
                          f"damaged. Delete the folder if you no longer need it.")
    history = _read_json(path / "history.json") if (path / "history.json").is_file() else []
    if record.get("status") == "running" and not still_training(record):
        record = _record_death(path, record)
    fields = set(RECORD_FIELDS)
    try:
        return Run(config=TrainConfig.from_dict(config), path=path, history=history,
                   **{k: v for k, v in record.items() if k in fields})
    except CourseError as e:
        raise CourseError(f"{path / 'train_config.json'}: {e}") from None


def _record_death(path: Path, record: dict) -> dict:
    """A "running" record whose process is gone (a kill, a power cut) becomes "died", on disk too, so the store
    never claims a dead run trains. Read again first: a run that ended just now has written its own record."""
    again = _read_json(path / RECORD)
    if not isinstance(again, dict) or again.get("status") != "running" or again.get("pid") != record.get("pid"):
        return again if isinstance(again, dict) else record
    record = {**again, "status": "died"}
    with contextlib.suppress(OSError):  # a read-only store: said in memory only
        write_atomic(path / RECORD, json.dumps(record, indent=2))
    return record


def run_model(run, device: str = "auto"):
    """(model, tokenizer) of a run (a Run, or its folder, name or name prefix): the pair it holds in memory, else
    the one saved in its folder's model/ (load_model says what is missing when there is none)."""
    if isinstance(run, (str, os.PathLike)):
        run = load_run(run)
    if run.model is not None:
        return run.model, run.tokenizer
    from llmcourse.models.loading import load_model

    return load_model(run.path, device=device)


def list_runs(prefix: str | None = None, folder=None) -> list[Run]:
    """Every saved run in runs_dir() (or `folder`) whose name starts with `prefix`, oldest first.

    A folder whose record is damaged is skipped with a warning, so one bad folder never hides the others."""
    runs = []
    for path in run_folders(folder):
        if prefix and not path.name.startswith(prefix):
            continue
        try:
            runs.append(load_run(path))
        except CourseError as e:
            warnings.warn(f"skipped {path.name}: {e}", RunRecordWarning, stacklevel=2)
    return runs


class RunRecordWarning(UserWarning):
    """A run folder whose record could not be read (it is skipped, never deleted)."""


def plan_run_folder(config: TrainConfig, overwrite: bool = False, now: datetime | None = None) -> tuple[Path, bool]:
    """(folder for a new run of `config`, whether a run already there is to be replaced), checked before anything loads.

    An explicit output_dir is used as it is; otherwise runs/<run_name or the readable name + start time>, with -2, -3
    ... when taken. overwrite=True replaces the run of that name (the newest one with the readable name)."""
    if config.output_dir:
        return _check_target(Path(config.output_dir).expanduser(), overwrite)
    root = runs_dir()
    if overwrite:
        target = root / config.run_name if config.run_name else next(
            (p for p in reversed(run_folders()) if p.name.startswith(config.name + "-")), None)
        if target is not None and target.exists():
            return _check_target(target, overwrite)
    name = config.run_name or f"{config.name}-{(now or datetime.now()):{STAMP}}"
    return reserve_folder(root, name), False


def reserve_folder(root: Path, name: str) -> Path:
    """Make root/<name> (or <name>-2, -3, ... when taken) and return it: mkdir fails on a folder that exists, so two
    runs started at the same moment never share one."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        n, path = 2, root / name
        while True:
            try:
                path.mkdir()
                return path
            except FileExistsError:
                path, n = root / f"{name}-{n}", n + 1
    except (NotADirectoryError, FileExistsError):
        raise CourseError(f"The runs folder {root} is not a folder (a file is in the way): set LLMCOURSE_RUNS to a "
                          "folder, or move that file.") from None
    except OSError as e:  # no permission, a read-only disk, a parent that cannot be made
        raise CourseError(f"The runs folder {root} is not writable ({e.strerror or e}): set LLMCOURSE_RUNS to a folder "
                          "you can write to, or give the run an output_dir (CLI: --output-dir).") from None


def _check_target(path: Path, overwrite: bool) -> tuple[Path, bool]:
    if path.exists() and not path.is_dir():
        raise CourseError(f"{path} is a file, not a folder: give the run a folder (output_dir / --output-dir), e.g. "
                          f"{path.parent / 'my-run'}.")
    if not path.is_dir() or not any(path.iterdir()):
        return path, False
    if not is_run(path):
        raise CourseError(f"{path} already holds files that are not a course run (no {RECORD}), and training never "
                          "deletes them. Choose another output_dir (CLI: --output-dir) or run_name.")
    if not overwrite:
        raise CourseError(f"{path} already holds a run. Pass overwrite=True (CLI: --overwrite) to replace it, "
                          f"resume={str(path)!r} (CLI: --resume) to continue it, or choose another output_dir.")
    refuse_if_training(path, "replace")
    return path, True


CHECKPOINT_WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json",
                      "pytorch_model.bin")


def checkpoint_problem(folder: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from (cut off mid-save, say), or None when it is complete."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its trainer_state.json is missing or cut off"
    if not isinstance(state, dict) or "global_step" not in state:
        return "its trainer_state.json holds no step"
    if not any((folder / w).is_file() and (folder / w).stat().st_size > 0 for w in CHECKPOINT_WEIGHTS):
        return "it holds no weights"
    if not (folder / "optimizer.pt").is_file() or (folder / "optimizer.pt").stat().st_size == 0:
        return "it holds no optimizer state"
    return None


def set_aside_incomplete_checkpoints(checkpoints: Path) -> list[Path]:
    """Rename each cut-off checkpoint-N to incomplete-checkpoint-N (kept, out of the rotation's and resume's way)."""
    moved = []
    for folder in sorted(checkpoints.glob("checkpoint-*")) if checkpoints.is_dir() else []:
        if folder.is_dir() and checkpoint_problem(folder):
            target = folder.with_name("incomplete-" + folder.name)
            if not target.exists():
                os.replace(folder, target)
                moved.append(target)
    return moved


def last_complete_checkpoint(checkpoints: Path, verbose: bool = False) -> str | None:
    """The newest checkpoint-N folder that is complete (incomplete ones are named and skipped), or None."""
    folders = sorted((p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
                     key=lambda p: int(p.name[11:]), reverse=True) if checkpoints.is_dir() else []
    for folder in folders:
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        if verbose:
            print(f"resume: skipping {folder} ({problem}); trying the one before it")
    return None


def died_line(run: Run) -> str:
    """One line for a run whose process died while training: at which step, and what is left to resume or load."""
    step = run.history[-1]["step"] if run.history else 0
    last = last_complete_checkpoint(run.path / "checkpoints")
    left = (f"resume it from {Path(last).name} with `python -m llmcourse train --resume {run.name}` "
            f"(Python: train(resume={run.name!r}))" if last else
            "it left no complete checkpoint, so nothing can be resumed: train it again, and delete this one with "
            f"`python -m llmcourse runs delete {run.name}`")
    if (run.path / "model").is_dir():  # model/ appears only whole (renamed from model.partial/), maybe from a stop
        left += f"; its model/ is whole: load_model({str(run.path)!r}) loads the last model it saved"
    return f"{run.name}: died at step {step} (its process {run.pid} is gone); {left}."


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds `path` (or will: an output_dir not made yet): the one place it is read."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def disk_needed(config: TrainConfig, trainable: int, total: int) -> int:
    """Bytes a run writes at most: its final model (every weight, or only the LoRA adapter) and the checkpoints it
    keeps (weights plus AdamW's two moments of the trainable ones), all fp32; the rotation writes a new checkpoint
    before it deletes the oldest, and a stopped run writes one."""
    weights = 4 * (trainable if config.lora else total)
    checkpoints = (config.save_total_limit + 1) if config.save_steps else 1
    return (weights if config.save_model else 0) + checkpoints * (weights + 8 * trainable)


def check_free_space(run: Run) -> None:
    """Refuse a run, before it trains, that would fill the disk while saving."""
    need, free = disk_needed(run.config, run.trainable_params, run.total_params), free_bytes(run.path)
    if free < need * 1.1:
        raise CourseError(f"Not enough disk space for this run: {run.path.parent} has {free / 2**20:.0f} MB free, and "
                          f"the run will write about {need / 2**20:.0f} MB (its model and checkpoints). Free some space "
                          "(`python -m llmcourse runs prune` deletes finished runs' checkpoints), or point "
                          "LLMCOURSE_RUNS at a bigger disk.")


def release_folder(path: Path) -> None:
    """Take back a run folder reserved for a run that never started: only while it is still empty."""
    for folder in (path / "checkpoints", path):
        with contextlib.suppress(OSError):  # not empty, or gone: leave it
            folder.rmdir()


def delete_run(name_or_path, force: bool = False) -> tuple[Path, int]:
    """Delete one run folder (only one the course wrote, see made_by_the_course); returns (its path, bytes freed).

    A symlink is refused, and so is a run still training (its process is alive) unless force=True."""
    path = Path(name_or_path).expanduser()
    path = path if is_run(path) or path.is_symlink() else runs_dir() / str(name_or_path)
    if path.is_symlink():
        raise CourseError(f"{path} is a symbolic link: delete the run folder it points to by its own path, or remove "
                          "the link yourself; nothing was deleted.")
    if not made_by_the_course(path):
        why = "its run.json is not a record the course wrote" if is_run(path) else "it is not a run folder nor the " \
              f"exact name of a run in {runs_dir()}"
        raise CourseError(f"{name_or_path!r}: {why}, so nothing was deleted (`python -m llmcourse runs` lists the runs).")
    record = _read_json(path / RECORD)
    pid = record.get("pid")
    if not force and record.get("status") == "running" and still_training(record):
        raise CourseError(f"{path.name} is still training (process {pid}): stop it first, or pass force=True "
                          "(CLI: --force) to delete it anyway.")
    size = disk_size(path)
    shutil.rmtree(path)
    return path, size


def prune_runs(folder=None) -> list[tuple[Path, int]]:
    """Delete the checkpoints/ folder of every finished run (its final model stays); [(folder, bytes freed)]."""
    freed = []
    for run in list_runs(folder=folder):
        checkpoints = run.path / "checkpoints"
        if run.status == "finished" and checkpoints.is_dir() and made_by_the_course(run.path):
            size = disk_size(checkpoints)
            shutil.rmtree(checkpoints)
            freed.append((checkpoints, size))
    return freed


def disk_size(path) -> int:
    """Bytes used by the files under `path`."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def runs_table(runs=None):
    """A DataFrame comparing runs: final train/eval loss, time, tokens/s (all saved runs by default)."""
    import pandas as pd

    runs = [r if isinstance(r, Run) else load_run(r) for r in (runs if runs is not None else list_runs())]
    return pd.DataFrame([r.summary() for r in runs])


def latest_run(base: str = BUNDLED, data: str = "kettlebird"):
    """The newest finished run that finetuned `base` on all of `data` for at least one epoch and saved its model
    (notebook 03's main run), or None. Short runs cut by max_steps (the panel's, sweeps, demos) do not count."""
    for run in reversed(list_runs()):
        c = run.config
        if (run.status == "finished" and c.model == base and c.data == data and c.max_train_samples is None
                and c.max_steps <= 0 and c.num_train_epochs >= 1 and (run.path / "model").is_dir()):
            return run
    return None
