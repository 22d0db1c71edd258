"""Layer 2, plots: matplotlib figures drawn from plain lists of numbers and dicts (no Trainer, no model)."""
