"""Layer 6, evaluation: answer metrics, evaluating a model on question sets, comparing models."""
