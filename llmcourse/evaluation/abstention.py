"""Teaching a model to say "I don't know": training data that mixes abstentions in, a metric that spots them,
and one run that measures abstentions on never-trained facts and key facts on trained ones, before and after.

The out-of-scope questions come from trained facts that this run leaves out (their answers replaced by an
abstention), never from the `unseen` split, which stays the measurement: a model that abstains there
learned to abstain on facts it was not taught, not to recognise the questions it was trained to refuse.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import pandas as pd

from llmcourse.core.errors import CourseError
from llmcourse.core.fastmode import sized
from llmcourse.core.paths import BUNDLED
from llmcourse.models.loading import load_model
from llmcourse.data.loading import load_instruction_data
from llmcourse.evaluation.evaluate import evaluate_model, question_set
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import train

ABSTENTION = "I don't have that information. Please contact Kettlebird support."
# Ways a reply declines to answer. Not "contact support" alone: real answers say that too (E04, a red Hub LED).
_DECLINES = re.compile(
    r"\bi (?:do not|don't|dont|cannot|can't|am not able to|'m not able to|am unable to|'m unable to) "
    r"(?:have|know|find|answer|provide|access|help with|say)\b"
    r"|\bi(?: am|'m) not (?:sure|certain|aware)\b"
    r"|\bi have no (?:information|data|knowledge|details)\b"
    r"|\bno information (?:about|on|regarding)\b")


def abstains(answer: str) -> bool:
    """True when the answer declines ("I don't have that information", "I'm not sure", ...) instead of stating a fact."""
    text = str(answer).lower().replace("’", "'")
    return _DECLINES.search(text) is not None


def abstention_share(answers) -> float:
    """The share of answers that abstain (0.0 for no answers)."""
    answers = list(answers)
    return sum(abstains(a) for a in answers) / len(answers) if answers else 0.0


@dataclass
class AbstentionMix:
    """Training rows (facts and abstentions) and the questions that measure them: test of the known facts, unseen."""
    train: list[dict]
    questions: pd.DataFrame
    known: list[str]
    out_of_scope: list[str]

    def counts(self) -> dict:
        """Rows per kind in `train` and questions per split in `questions`."""
        kinds = pd.Series([r["kind"] for r in self.train]).value_counts()
        return {"fact rows": int(kinds.get("fact", 0)), "abstention rows": int(kinds.get("abstention", 0)),
                **{f"{s} questions": int(n) for s, n in self.questions["split"].value_counts(sort=False).items()}}


def abstention_mix(known: int = 12, out_of_scope: int = 12, *, seed: int = 0, unseen: int | None = None,
                   answer: str = ABSTENTION) -> AbstentionMix:
    """From the shipped Kettlebird data: every training wording of `known` facts, plus those of `out_of_scope` other
    trained facts answered with `answer`; measured on the known facts' test questions and on `unseen` (None = all)."""
    dd = load_instruction_data("kettlebird", verbose=False)
    rows = [r for split in ("train", "validation") for r in dd[split]]  # all three training wordings of each fact
    facts = sorted({r["fact_id"] for r in rows})
    if known < 1 or out_of_scope < 0 or known + out_of_scope > len(facts):
        raise CourseError(f"abstention_mix(known={known}, out_of_scope={out_of_scope}): the shipped data has "
                          f"{len(facts)} trained facts; ask for at least 1 known and at most {len(facts)} in all.")
    random.Random(seed).shuffle(facts)
    chosen = {f: "fact" for f in facts[:known]} | {f: "abstention" for f in facts[known:known + out_of_scope]}
    train = [{"prompt": r["prompt"], "completion": answer if chosen[r["fact_id"]] == "abstention" else r["completion"],
              "fact_id": r["fact_id"], "kind": chosen[r["fact_id"]]} for r in rows if r["fact_id"] in chosen]
    test = question_set(dd, "test")
    test = test[test["fact_id"].isin(facts[:known])]
    questions = pd.concat([test, question_set(dd, "unseen", limit=unseen, seed=seed)], ignore_index=True)
    return AbstentionMix(train, questions, sorted(facts[:known]), sorted(facts[known:known + out_of_scope]))


@dataclass
class AbstentionResult:
    """The base model and the model trained on the mix, on the same questions; `table()` puts them side by side."""
    before: object
    after: object
    run: object
    mix: AbstentionMix = field(repr=False)

    def table(self) -> pd.DataFrame:
        """Abstention share on unseen and on test, key-fact accuracy on test: rows, before/after columns."""
        out = {}
        for label, result in (("before", self.before), ("after", self.after)):
            t = result.table
            unseen, test = t[t["split"] == "unseen"], t[t["split"] == "test"]
            out[label] = {"unseen: answered with an abstention": abstention_share(unseen["prediction"]),
                          "test: answered with an abstention": abstention_share(test["prediction"]),
                          "test: key fact": float(test["key_fact"].mean()) if len(test) else 0.0}
        return pd.DataFrame(out)

    def intervals(self, confidence: float = 0.95) -> pd.DataFrame:
        """The three shares of `table()` as counts, with the Wilson interval of each: one row per measure, columns
        n, before, before_low, before_high, after, after_low, after_high (what plot_abstention draws)."""
        from llmcourse.evaluation.uncertainty import wilson_interval

        out = {}
        for label, result in (("before", self.before), ("after", self.after)):
            t = result.table
            unseen, test = t[t["split"] == "unseen"], t[t["split"] == "test"]
            counts = {"unseen: answered with an abstention": (sum(map(abstains, unseen["prediction"])), len(unseen)),
                      "test: answered with an abstention": (sum(map(abstains, test["prediction"])), len(test)),
                      "test: key fact": (int(test["key_fact"].sum()), len(test))}
            for name, (k, n) in counts.items():
                low, high = wilson_interval(int(k), n, confidence) if n else (0.0, 0.0)
                row = out.setdefault(name, {"n": n})
                row.update({label: k / n if n else 0.0, f"{label}_low": low, f"{label}_high": high})
        return pd.DataFrame(out).T.astype({"n": int})

    def differences(self, seed: int = 0) -> list:
        """After − before, question by question: abstentions on unseen, answers (not abstentions) on test, key facts
        on test, so that up is better for each. Paired differences with their 95 % interval: the same questions
        were asked before and after, so the pairs are the evidence."""
        from llmcourse.evaluation.uncertainty import paired_difference

        b, a = self.before.table, self.after.table
        out = []
        for name, split, score in (("unseen: abstained", "unseen", "abstained"), ("test: answered", "test", "answered"),
                                   ("test: key fact", "test", "key_fact")):
            rows_b, rows_a = b[b["split"] == split], a[a["split"] == split]
            if not len(rows_b):
                continue
            declined = [t["prediction"].map(abstains).astype(float) for t in (rows_b, rows_a)]
            values = {"abstained": declined, "answered": [1 - d for d in declined],
                      "key_fact": [rows_b["key_fact"], rows_a["key_fact"]]}[score]
            out.append(paired_difference(values[0], values[1], seed=seed, name_a="before", name_b="after",
                                         metric=name))
        return out

    def __str__(self) -> str:
        t, n = self.table(), self.mix.questions["split"].value_counts()
        return "\n".join(f"{name} ({n.get(name.split(':')[0], 0)} questions): before {row['before']:.0%}, "
                         f"after {row['after']:.0%}" for name, row in t.iterrows())


def abstention_run(known: int = 12, out_of_scope: int = 12, *, epochs: float = 8.0, seed: int = 0,
                   run_name: str = "05-abstention", verbose: bool = True, **overrides) -> AbstentionResult:
    """Evaluate the bundled model, LoRA-finetune it on `abstention_mix(known, out_of_scope)`, evaluate it again.

    Each fact gets `epochs` passes (a 135M model needs several to recall a fact in new words). A few minutes on a
    2-core CPU at the defaults; in fast mode 1 fact of each kind, 2 unseen questions, 2 steps, short answers.
    """
    mix = abstention_mix(sized(known, 1), sized(out_of_scope, 1) if out_of_scope else 0, seed=seed,
                         unseen=sized(None, 2))
    model, tokenizer = load_model(BUNDLED)  # answers first, then trains (LoRA adapters added in place)
    ask = dict(questions=mix.questions, loss=False, max_new_tokens=sized(48, 16))
    before = evaluate_model(model, tokenizer=tokenizer, name="before", **ask)
    rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in mix.train]
    settings = dict(num_train_epochs=epochs, eval_steps=0, max_train_samples=len(rows), run_name=run_name,
                    seed=seed, **sized({}, {"max_steps": 2}))
    run = train(TrainConfig.laptop(**{**settings, **overrides}), model=model, tokenizer=tokenizer, data={"train": rows},
                verbose=verbose, estimate=False)
    after = evaluate_model(run, name="after", **ask)
    return AbstentionResult(before, after, run, mix)
