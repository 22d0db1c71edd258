"""A brief, focused finetune: the bundled model taught only the facts a set of questions asks about."""
from __future__ import annotations

import pandas as pd

from llmcourse.data.loading import load_instruction_data
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import train


def quick_finetune(questions: pd.DataFrame, data="kettlebird", *, fast: bool = False, run_name: str = "quick-finetune",
                   verbose: bool = True, **overrides):
    """A focused LoRA finetune of the bundled model on the training paraphrases of the facts in `questions`.

    Only those facts are trained, eight passes over them (about 1.5 minutes for 8 facts on a 2-core CPU): a
    135M model needs that many to recall a fact in new words; one pass teaches the style. `unseen` facts stay unseen.
    The run records max_train_samples, so `latest_run` never mistakes it for a run on all the data.
    fast=True: 2 steps (the same code path, for tests); in fast mode `TrainConfig.laptop` caps it at 3 steps itself.
    """
    dd = load_instruction_data(data, verbose=False)
    facts = set(questions.loc[questions["split"] != "unseen", "fact_id"])
    rows = dd["train"].select([i for i, fact in enumerate(dd["train"]["fact_id"]) if fact in facts])
    settings = dict(num_train_epochs=8.0, eval_steps=0, max_train_samples=len(rows), run_name=run_name,
                    **({"max_steps": 2} if fast else {}))
    config = TrainConfig.laptop(**{**settings, **overrides})
    return train(config, data={"train": rows}, verbose=verbose, estimate=False)
