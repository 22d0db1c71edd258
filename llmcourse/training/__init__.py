"""Layer 5, training: TrainConfig, schedules, losses, the Trainer, callbacks, the run store, cost and sweeps."""
from llmcourse.core.paths import inductor_cache

inductor_cache()  # before transformers' Trainer is imported (see there); compiled runs reuse kernels across sessions
