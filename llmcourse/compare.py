"""Comparing ways of answering the same questions: side-by-side answers, a metrics table and a bar chart,
and the finetuned model to compare with (a saved run, or a brief finetune on the facts being asked).
"""
from __future__ import annotations

import pandas as pd

from .models import BUNDLED


def compare_results(results: list, metrics=("exact_match", "token_f1", "key_fact")) -> pd.DataFrame:
    """One row per model and split, one column per metric: several EvalResults on the same questions."""
    frames = [r.summary.loc[[s for s in r.summary.index if s != "all"], ["n", *[m for m in metrics if m in r.summary]]]
              .assign(model=r.name) for r in results]
    table = pd.concat(frames).rename_axis("split").reset_index()
    return table.set_index(["model", "split"])


def side_by_side(results: list, extra=()) -> pd.DataFrame:
    """Each question once, its reference, and every model's answer in its own column (plus `extra` columns)."""
    first = results[0].table
    table = first[["split", "question", "reference", *extra]].copy()
    for r in results:
        if list(r.table["question"]) != list(first["question"]):
            raise ValueError(f"{r.name} answered other questions than {results[0].name}: compare on the same set.")
        table[r.name] = list(r.table["prediction"])
    return table


def plot_comparison(table: pd.DataFrame, metric: str = "key_fact", ax=None):
    """A grouped bar chart of one metric from `compare_results`: a group per split, a bar per model."""
    import matplotlib.pyplot as plt

    wide = table[metric].unstack("split")
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    wide.T.plot.bar(ax=ax, rot=0, width=0.8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} per split")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def latest_run(base: str = BUNDLED, data: str = "kettlebird"):
    """The newest finished run that finetuned `base` on all of `data` for at least one epoch and saved its model
    (notebook 03's main run), or None. Short runs cut by max_steps (the panel's, sweeps, demos) do not count."""
    from .runs import list_runs

    for run in reversed(list_runs()):
        c = run.config
        if (run.status == "finished" and c.model == base and c.data == data and c.max_train_samples is None
                and c.max_steps <= 0 and c.num_train_epochs >= 1 and (run.path / "model").is_dir()):
            return run
    return None


def quick_finetune(questions: pd.DataFrame, data="kettlebird", *, fast: bool = False, run_name: str = "quick-finetune",
                   verbose: bool = True, **overrides):
    """A focused LoRA finetune of the bundled model on the training paraphrases of the facts in `questions`.

    Only those facts are trained, eight passes over them (about 1.5 minutes for 8 facts on a 2-core CPU): a
    135M model needs that many to recall a fact in new words; one pass teaches the style. `unseen` facts stay unseen.
    The run records max_train_samples, so `latest_run` never mistakes it for a run on all the data.
    fast=True: 2 steps (the same code path, for tests); in fast mode `TrainConfig.laptop` caps it at 3 steps itself.
    """
    from .config import TrainConfig
    from .data import load_instruction_data
    from .train import train

    dd = load_instruction_data(data, verbose=False)
    facts = set(questions.loc[questions["split"] != "unseen", "fact_id"])
    rows = dd["train"].select([i for i, fact in enumerate(dd["train"]["fact_id"]) if fact in facts])
    settings = dict(num_train_epochs=8.0, eval_steps=0, max_train_samples=len(rows), run_name=run_name,
                    **({"max_steps": 2} if fast else {}))
    config = TrainConfig.laptop(**{**settings, **overrides})
    return train(config, data={"train": rows}, verbose=verbose, estimate=False)
