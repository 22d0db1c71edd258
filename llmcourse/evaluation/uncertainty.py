"""How sure a score is: 95 % intervals, paired differences between two models, and agreement beyond chance.

A score on 20 questions is a sample, not a fact about the model. `wilson_interval` gives the interval of a
share (right/wrong answers), `bootstrap_interval` that of a mean of graded scores (token F1, ROUGE-L).
Two models asked the SAME questions are compared question by question (`paired_difference`, `compare_pair`):
the interval of the mean difference says whether one is better (it excludes 0) or the sample is too small,
and about how many questions would settle a difference of the observed size. `cohens_kappa` says how much
two graders (a judge and you) agree beyond what chance alone gives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from llmcourse.core.errors import CourseError


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise CourseError(f"confidence must be between 0 and 1 (0.95 for a 95% interval), not {confidence!r}.")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n` (it stays inside [0, 1], even at 0/n or n/n)."""
    if n <= 0 or not 0 <= successes <= n:
        raise CourseError(f"wilson_interval needs 0 <= successes <= n and n > 0, not successes={successes}, n={n}.")
    z, p = _z(confidence), successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, no 1e-17 from rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _values(values, what="values") -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    arr = arr[~np.isnan(arr)]  # no verdict (a judge's NaN) is no score, not a zero
    if arr.size == 0:
        raise CourseError(f"No {what} to put an interval on (an empty list, or only missing values).")
    return arr


def _bootstrap(arr: np.ndarray, seed: int, resamples: int, confidence: float) -> tuple[float, float]:
    _z(confidence)
    if resamples < 1:
        raise CourseError(f"resamples must be at least 1, not {resamples}.")
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(values, *, seed: int = 0, resamples: int = 2000, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-question scores: resample the questions, take the middle 95 %.

    Missing values (NaN) are left out. The same seed gives the same interval."""
    return _bootstrap(_values(values), seed, resamples, confidence)


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "\u2212")


def _about(n: int) -> int:
    """A round figure for 'about N questions': two significant digits."""
    if n < 100:
        return n
    digits = int(math.floor(math.log10(n))) - 1
    return int(round(n, -digits))


@dataclass
class Difference:
    """The mean per-question difference B − A of two models on the same questions, with its interval.

    settles: the interval excludes 0, so one model is better on questions like these.
    questions_needed: about how many questions an interval would need to exclude 0 for a difference of this size
    and spread (None when the mean difference is 0)."""
    mean: float
    low: float
    high: float
    n: int
    settles: bool
    questions_needed: int | None
    name_a: str = "A"
    name_b: str = "B"
    metric: str | None = None
    confidence: float = 0.95

    def __str__(self) -> str:
        label = f"{self.name_b} \u2212 {self.name_a}" + (f" ({self.metric.replace('_', ' ')})" if self.metric else "")
        ci = f"{round(self.confidence * 100):g}% CI {_signed(self.low)} to {_signed(self.high)}"
        head = f"{label}: {_signed(self.mean)} ({ci}, {self.n} questions)"
        if self.settles:
            return f"{head}: {self.name_b if self.mean > 0 else self.name_a} is better"
        if self.questions_needed is None:
            if self.low == self.high == 0:
                return f"{head}: the same score on every question"
            return f"{head}: too few questions to tell; the two are level on these"
        return (f"{head}: too few questions to tell; about {_about(self.questions_needed)} would settle "
                f"a difference this size")


def paired_difference(a, b, *, seed: int = 0, resamples: int = 2000, confidence: float = 0.95,
                      name_a: str = "A", name_b: str = "B", metric: str | None = None) -> Difference:
    """B − A question by question: `a` and `b` are two models' scores on the SAME questions, in the same order.

    The interval is a percentile bootstrap of the mean difference. Pairs where either score is missing (NaN)
    are left out. questions_needed = (z * sd / |mean|)^2, the sample size at which an interval of the observed
    per-question spread `sd` would just exclude 0 (at least n + 1 while the interval does not settle it)."""
    a, b = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    if a.shape != b.shape:
        raise CourseError(f"paired_difference needs two scores per question: got {a.size} and {b.size} scores.")
    d = b - a
    d = d[~np.isnan(d)]
    if d.size == 0:
        raise CourseError("paired_difference got no question both models were scored on.")
    low, high = _bootstrap(d, seed, resamples, confidence)
    mean = float(d.mean())
    settles = bool(low > 0 or high < 0)
    needed = None
    if abs(mean) > 1e-12:
        sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
        needed = max(1, math.ceil((_z(confidence) * sd / abs(mean)) ** 2))
        if not settles:
            needed = max(needed, d.size + 1)
    return Difference(mean, low, high, int(d.size), settles, needed, name_a, name_b, metric, confidence)


def compare_pair(result_a, result_b, metric: str = "key_fact", *, split: str | None = None, seed: int = 0,
                 resamples: int = 2000, confidence: float = 0.95) -> Difference:
    """B − A for two `EvalResult`s on the same questions (all splits, or one `split`): see `paired_difference`."""
    ta, tb = result_a.table, result_b.table
    for r in (result_a, result_b):
        if metric not in r.table:
            have = [c for c in r.table.columns if c in ("exact_match", "token_f1", "rouge_l", "key_fact", "judge")]
            raise CourseError(f"{r.name} has no {metric!r} score; it has {have}.")
    if list(ta["question"]) != list(tb["question"]) or list(ta["split"]) != list(tb["split"]):
        raise CourseError(f"{result_b.name} answered other questions than {result_a.name}: "
                          "a paired comparison needs the same questions (pass questions= to evaluate_model).")
    if split is not None:
        if split not in set(ta["split"]):
            raise CourseError(f"No split {split!r} in these results; they have {sorted(set(ta['split']))}.")
        ta, tb = ta[ta["split"] == split], tb[tb["split"] == split]
    return paired_difference(ta[metric], tb[metric], seed=seed, resamples=resamples, confidence=confidence,
                             name_a=result_a.name, name_b=result_b.name, metric=metric)


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def cohens_kappa(a, b) -> float:
    """Cohen's kappa of two graders' labels for the same items: 1 = full agreement, 0 = what chance gives.

    Items either grader left without a label (None or NaN, a judge with no verdict) are left out. NaN when
    kappa is undefined: both graders gave every item the same single label."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise CourseError(f"cohens_kappa needs one label from each grader per item: got {len(a)} and {len(b)} labels.")
    pairs = [(x, y) for x, y in zip(a, b) if not _missing(x) and not _missing(y)]
    if not pairs:
        raise CourseError("cohens_kappa got no item both graders labelled.")
    n = len(pairs)
    observed = sum(x == y for x, y in pairs) / n
    labels = {x for x, _ in pairs} | {y for _, y in pairs}
    expected = sum(sum(x == lab for x, _ in pairs) * sum(y == lab for _, y in pairs) for lab in labels) / n ** 2
    if expected >= 1:
        return float("nan")
    return (observed - expected) / (1 - expected)


def metric_interval(values, *, seed: int = 0, resamples: int = 2000, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson where every score is 0 or 1 (exact match, key fact, a judge), else the bootstrap of the mean."""
    arr = _values(values, "scores")
    if np.isin(arr, (0.0, 1.0)).all():
        return wilson_interval(int(arr.sum()), int(arr.size), confidence)
    return _bootstrap(arr, seed, resamples, confidence)
