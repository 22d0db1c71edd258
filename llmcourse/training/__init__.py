"""Layer 5, training: TrainConfig, schedules, losses, the Trainer, callbacks, the run store, cost and sweeps."""
