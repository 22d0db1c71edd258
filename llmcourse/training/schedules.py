"""Learning-rate schedules: the scheduler Trainer uses for a TrainConfig, its values step by step, the step count.

train() and the previews (plot_schedule, the widgets) both build the scheduler here, so a preview is
exactly what a run will do.
"""
from __future__ import annotations

import math

import torch

from llmcourse.training.config import TrainConfig

SCHEDULER_KWARGS = {"cosine_with_restarts": lambda n: {"num_cycles": 3},
                    "warmup_stable_decay": lambda n: {"num_decay_steps": max(1, round(0.2 * n))}}


def make_scheduler(config: TrainConfig, optimizer, num_training_steps: int, lr_lambda=None):
    """The learning-rate scheduler Trainer uses for this config (and the schedule preview uses too)."""
    from transformers import get_scheduler

    if lr_lambda is not None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    kwargs = SCHEDULER_KWARGS.get(config.lr_scheduler_type, lambda n: {})(num_training_steps)
    return get_scheduler(config.lr_scheduler_type, optimizer, num_warmup_steps=math.ceil(num_training_steps *
                         config.warmup_ratio), num_training_steps=num_training_steps, scheduler_specific_kwargs=kwargs)


def lr_schedule(config: TrainConfig, num_training_steps: int) -> list[float]:
    """The learning rate at each optimizer step, exactly as Trainer will apply it (for previews).

    Item i is the rate of step i + 1: steps count from 1, as in a run's history and its loss plot."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=config.learning_rate)
    scheduler = make_scheduler(config, optimizer, num_training_steps)
    lrs = []
    for _ in range(num_training_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def count_steps(config: TrainConfig, n_rows: int, world_size: int = 1) -> int:
    """Optimizer steps a run will take on `n_rows` training rows (Trainer's own arithmetic)."""
    if config.max_steps > 0:
        return config.max_steps
    batches = math.ceil(math.ceil(n_rows / world_size) / config.per_device_train_batch_size)
    per_epoch = max(math.ceil(batches / config.gradient_accumulation_steps), 1)
    return math.ceil(config.num_train_epochs * per_epoch)
