"""Low-memory mode: one setting (LLMCOURSE_LOW_MEMORY, or little free RAM) that turns on the memory savers.

The savers change no numbers a learner compares: activation checkpointing recomputes instead of storing
(same losses, slower steps), without the rollback copy a diverged run stops as is instead of being put back, and
a finished run's model stays in its folder instead of in memory (`load_model(run.path)` loads it again).
"""
from __future__ import annotations

import os

LOW_MEMORY_ENV = "LLMCOURSE_LOW_MEMORY"
# Below this much available RAM the notebooks pick the savers by themselves (notebook 03 peaks near 6 GB without).
LOW_MEMORY_BELOW_GB = 6.5
SAVERS = {"activation_checkpointing": True, "divergence_rollback": False}
# Peak memory of each notebook run by `check-course --full` (docs/instructor.md), in GB: normal mode (2026-12-02),
# low-memory mode (2026-12-01). All on a 2-core CPU without bf16, so in fp32.
NOTEBOOK_PEAK_GB = {
    "00_setup": (1.0, 1.0),
    "01_prompting_vs_finetuning": (3.2, 2.5),
    "02_instruction_data": (1.8, 1.8),
    "03_training": (5.7, 3.8),
    "04_evaluation": (3.8, 3.1),
    "05_your_own_task": (3.9, 3.0),
}
_announced = False


def available_gb() -> float:
    """RAM the course can use now (psutil's 'available': free plus what the system can drop), in GB."""
    import psutil

    return psutil.virtual_memory().available / 1e9


def low_memory(available: float | None = None) -> bool:
    """True when LLMCOURSE_LOW_MEMORY=1, or when it is unset and less than LOW_MEMORY_BELOW_GB is available."""
    setting = os.environ.get(LOW_MEMORY_ENV, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return (available_gb() if available is None else available) < LOW_MEMORY_BELOW_GB


def why() -> str:
    """What turned low-memory mode on, for the one line a notebook prints."""
    if os.environ.get(LOW_MEMORY_ENV, "").strip() == "1":
        return f"{LOW_MEMORY_ENV}=1"
    return f"{available_gb():.1f} GB of RAM available, under {LOW_MEMORY_BELOW_GB} GB; {LOW_MEMORY_ENV}=0 turns it off"


def with_savers(config, verbose: bool = True):
    """`config` with the memory savers on when low-memory mode applies (said once per process), else unchanged."""
    global _announced
    if not low_memory() or all(getattr(config, k) == v for k, v in SAVERS.items()):
        return config
    if verbose and not _announced:
        _announced = True
        print(f"Low-memory mode ({why()}): activation checkpointing on, no rollback copy of the weights, trained "
              "models kept on disk, not in memory; same losses, slower steps.")
    return config.replace(**SAVERS)


def keeps_model(run, loaded_here: bool) -> bool:
    """Whether `run` keeps its trained model in memory (run.model). In low-memory mode a model that train() loaded
    itself and saved in the run's folder is let go: 0.54 GB per run of the bundled model in fp32 (notebook 03
    trains four that way). A model the caller passed in stays (the caller holds it anyway)."""
    return not (low_memory() and loaded_here and (run.path / "model").is_dir())


def ram_per_notebook(available: float, low: bool) -> tuple[bool, str, str]:
    """(every notebook fits, one line of each notebook's need against `available` GB, what to do if not)."""
    col = 1 if low else 0
    need = {name: peaks[col] for name, peaks in NOTEBOOK_PEAK_GB.items()}
    short = [name for name, gb in need.items() if gb > available]
    mode = "low-memory mode" if low else "normal mode"
    detail = f"{mode}, {available:.1f} GB available; needs: " + ", ".join(
        f"{name[:2]} {gb:.1f}" + (" (short)" if name in short else "") for name, gb in need.items())
    if not short:
        return True, detail, ""
    fix = (f"Close other programs until {max(need.values()):.1f} GB are available"
           + ("" if low else f", or set {LOW_MEMORY_ENV}=1 (activation checkpointing, no rollback copy)")
           + "; or pair with a neighbour for " + ", ".join(short) + ".")
    return False, detail, fix
