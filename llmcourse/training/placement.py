"""Where and how a run computes: its precision, its CPU threads, and its rank and device under torchrun,
accelerate or FSDP."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from llmcourse.core.errors import CourseError
from llmcourse.core.hardware import forced_cpu_precision, prefers_bf16


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 where this hardware was measured to run bf16 matmuls faster than fp32 (on a CPU,
    $LLMCOURSE_PRECISION overrides that), fp16 on GPUs without bf16, else fp32. Weights stay fp32 (autocast)."""
    if precision == "fp16" and device.type != "cuda":
        raise CourseError("precision='fp16' needs a CUDA GPU; on this machine use 'bf16' or 'fp32' (or 'auto').")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return forced_cpu_precision() or ("bf16" if prefers_bf16("cpu") else "fp32")
    return "fp32"


def set_threads_for_this_process() -> int:
    """Under torchrun, share the cores among the local processes instead of each one using all of them."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    return torch.get_num_threads()


def same_folder_on_every_process(path: Path | None) -> Path:
    """Under torchrun the first process picks the run folder (names hold the start time) and the others take it."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return path
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available())  # what TrainingArguments would set up a moment later
    box = [str(path) if path is not None else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def fsdp() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")


def load_device(device: str) -> str:
    """Where to load the model: as asked; under torchrun/accelerate each process takes its own GPU, and FSDP
    loads on the CPU and shards from there (the point of FSDP is a model too big for one GPU)."""
    if device != "auto" or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return device
    if fsdp() or not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
