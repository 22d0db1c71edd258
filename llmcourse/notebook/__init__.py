"""Layer 7, notebook: what a learner sees in Jupyter: the training panel, token tables, run comparisons."""
