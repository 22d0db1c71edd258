"""Run records: what a training run did (config, loss history, timing, paths), saved under runs/<name>/ to compare later.

A run folder holds train_config.json, run.json (status, timing, precision, ...), history.json and history.csv
(one row per logged step), loss.png, model/ (the final model or LoRA adapter) and checkpoints/.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import TrainConfig
from .errors import CourseError

HISTORY_COLUMNS = ("step", "epoch", "tokens", "seconds", "learning_rate", "loss", "grad_norm", "eval_loss")


def runs_dir() -> Path:
    """Where runs are saved: $LLMCOURSE_RUNS, else <repo>/runs in a checkout (notebooks and CLI share it), else ./runs."""
    env = os.environ.get("LLMCOURSE_RUNS")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "runs"
    return Path.cwd() / "runs"


@dataclass
class Run:
    """One training run: its config, per-step history, outcome and where its files are."""
    config: TrainConfig
    path: Path
    history: list = field(default_factory=list, repr=False)  # rows with HISTORY_COLUMNS keys (None = not logged)
    status: str = "running"  # running | finished | stopped | diverged | interrupted | crashed
    message: str = ""
    precision: str = "fp32"
    device: str = "cpu"
    seconds: float = 0.0
    tokens: int = 0
    trainable_params: int = 0
    total_params: int = 0
    peak_memory_mb: float | None = None
    estimate: dict | None = None
    best_checkpoint: str | None = None
    model: object = field(default=None, repr=False, compare=False)  # the trained model (in memory only)
    tokenizer: object = field(default=None, repr=False, compare=False)

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
                "method": f"LoRA r={self.config.lora_r}" if self.config.lora else "full",
                "steps": self.history[-1]["step"] if self.history else 0, "train loss": _round(self.final_loss),
                "eval loss": _round(self.final_eval_loss), "minutes": round(self.seconds / 60, 2),
                "tokens/s": round(self.tokens_per_second), "precision": self.precision,
                "trainable params": self.trainable_params,
                "memory GB (est.)": self.estimate["memory_gb"]["total"] if self.estimate else None}

    def save(self) -> None:
        """Write train_config.json, run.json, history.json and history.csv into the run folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "train_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        record = {k: getattr(self, k) for k in ("status", "message", "precision", "device", "seconds", "tokens",
                                                 "trainable_params", "total_params", "peak_memory_mb", "estimate",
                                                 "best_checkpoint")}
        (self.path / "run.json").write_text(json.dumps(record, indent=2))
        (self.path / "history.json").write_text(json.dumps(self.history))
        self.frame().to_csv(self.path / "history.csv", index=False)

    def plot(self, **kw):
        """Loss (raw + smoothed, eval) and learning rate of this run."""
        from .plotting import plot_history

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


def _round(x):
    return None if x is None or not math.isfinite(x) else round(x, 4)


def run_path(name_or_path) -> Path:
    """runs/<name> for a bare name, the path itself for a folder path."""
    p = Path(name_or_path).expanduser()
    if p.is_dir() or p.is_absolute() or len(p.parts) > 1:
        return p
    return runs_dir() / str(name_or_path)


def load_run(name_or_path) -> Run:
    """A saved run back from disk (survives kernel restarts): load_run("lora-r64-lr1e-03-cosine")."""
    path = run_path(name_or_path)
    if not (path / "run.json").is_file():
        known = ", ".join(r.name for r in list_runs()) or "none yet"
        raise CourseError(f"{path} is not a saved run (no run.json). Runs in {runs_dir()}: {known}.")
    record = json.loads((path / "run.json").read_text())
    config = TrainConfig.from_dict(json.loads((path / "train_config.json").read_text()))
    history = json.loads((path / "history.json").read_text()) if (path / "history.json").is_file() else []
    return Run(config=config, path=path, history=history, **record)


def list_runs(folder=None) -> list[Run]:
    """Every saved run in runs_dir() (or `folder`), oldest first."""
    root = Path(folder) if folder else runs_dir()
    if not root.is_dir():
        return []
    found = sorted((p for p in root.iterdir() if (p / "run.json").is_file()), key=lambda p: p.stat().st_mtime)
    return [load_run(p) for p in found]


def runs_table(runs=None):
    """A DataFrame comparing runs: final train/eval loss, time, tokens/s (all saved runs by default)."""
    import pandas as pd

    runs = [r if isinstance(r, Run) else load_run(r) for r in (runs if runs is not None else list_runs())]
    return pd.DataFrame([r.summary() for r in runs])
