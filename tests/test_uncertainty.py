"""Intervals, paired differences and kappa on hand-made cases whose values are known."""
import math

import pandas as pd
import pytest

from llmcourse import CourseError
from llmcourse.evaluation.evaluate import EvalResult, score_table, summarize
from llmcourse.evaluation.uncertainty import (bootstrap_interval, cohens_kappa, compare_pair, metric_interval,
                                              paired_difference, wilson_interval, _about)


def test_wilson_interval_of_8_out_of_10_is_the_textbook_one():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0  # ends stay inside [0, 1]
    assert round(wilson_interval(0, 10)[1], 4) == 0.2775
    wide, narrow = wilson_interval(8, 10, confidence=0.99), wilson_interval(80, 100)
    assert wide[0] < low and wide[1] > high and narrow[1] - narrow[0] < high - low


@pytest.mark.parametrize("args", [(3, 0), (11, 10), (-1, 10)])
def test_wilson_interval_refuses_impossible_counts(args):
    with pytest.raises(CourseError, match="successes"):
        wilson_interval(*args)


def test_bootstrap_interval_is_fixed_by_its_seed_and_narrows_with_more_questions():
    scores = [0.1, 0.5, 0.9, 0.3, 0.7]
    low, high = bootstrap_interval(scores)
    assert (round(low, 4), round(high, 4)) == (0.26, 0.74)  # this implementation, seed 0, 2000 resamples
    assert bootstrap_interval(scores, seed=0) == (low, high)
    assert low < 0.5 < high  # the mean of the scores lies inside
    more_low, more_high = bootstrap_interval(scores * 4)  # the same spread on four times the questions
    assert (round(more_low, 4), round(more_high, 4)) == (0.38, 0.62)
    assert more_high - more_low < high - low
    assert bootstrap_interval([0.4, float("nan"), 0.4]) == (0.4, 0.4)  # no verdict is left out, not a zero
    with pytest.raises(CourseError, match="No values"):
        bootstrap_interval([])


def test_metric_interval_is_wilson_for_right_or_wrong_and_bootstrap_for_graded_scores():
    assert metric_interval([1.0] * 8 + [0.0] * 2) == wilson_interval(8, 10)
    assert metric_interval([0.1, 0.5, 0.9, 0.3, 0.7]) == bootstrap_interval([0.1, 0.5, 0.9, 0.3, 0.7])


def test_a_clear_paired_difference_says_which_is_better():
    diff = paired_difference([0] * 20, [1] * 5 + [0] * 15, name_a="base", name_b="tuned")
    assert (diff.mean, round(diff.low, 4), round(diff.high, 4), diff.n, diff.settles) == (0.25, 0.1, 0.45, 20, True)
    assert str(diff) == "tuned \u2212 base: +0.25 (95% CI +0.10 to +0.45, 20 questions): tuned is better"
    worse = paired_difference([1] * 5 + [0] * 15, [0] * 20, name_a="base", name_b="tuned")
    assert worse.settles and str(worse).endswith(": base is better") and "\u22120.25" in str(worse)


def test_a_small_paired_difference_says_how_many_questions_would_settle_it():
    a = [1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    b = [1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0]  # 3 questions gained, 1 lost
    diff = paired_difference(a, b)
    assert round(diff.mean, 4) == 0.1 and diff.low < 0 < diff.high and not diff.settles
    # sd of the differences is sqrt(0.2): (1.96 * 0.447 / 0.1)^2 = 76.8
    assert diff.questions_needed == 77
    assert str(diff) == ("B \u2212 A: +0.10 (95% CI \u22120.10 to +0.30, 20 questions): too few questions to tell; "
                         "about 77 would settle a difference this size")
    assert (_about(77), _about(312), _about(4567)) == (77, 310, 4600)


def test_level_models_get_no_questions_needed():
    tie = paired_difference([1, 0] * 10, [0, 1] * 10)
    assert tie.mean == 0 and tie.questions_needed is None and not tie.settles
    assert "level on these" in str(tie)
    same = paired_difference([0.5] * 4, [0.5] * 4)
    assert str(same).endswith("the same score on every question")
    with pytest.raises(CourseError, match="two scores per question"):
        paired_difference([1, 0], [1])


def _result(name, answers):
    qs = pd.DataFrame({"id": ["a", "b", "c"], "fact_id": ["a", "b", "c"], "split": ["test", "test", "unseen"],
                       "question": ["Warranty?", "Code?", "CTO?"],
                       "reference": ["27 months.", "E17.", "Rasmus Achterberg."], "source": ["", "", ""]})
    table = score_table(qs, answers)
    return EvalResult(name, table, summarize(table))


def test_compare_pair_pairs_two_results_question_by_question():
    base = _result("base", ["No idea.", "E17.", "No idea."])
    tuned = _result("tuned", ["27 months.", "E17.", "Rasmus Achterberg."])
    diff = compare_pair(base, tuned)
    assert (diff.n, round(diff.mean, 4), diff.metric) == (3, 0.6667, "key_fact")
    assert str(diff).startswith("tuned \u2212 base (key fact): +0.67")
    assert compare_pair(base, tuned, split="unseen").n == 1
    other = EvalResult("other", base.table.iloc[:2], base.summary)
    with pytest.raises(CourseError, match="same questions"):
        compare_pair(base, other)
    with pytest.raises(CourseError, match="no 'judge' score"):
        compare_pair(base, tuned, metric="judge")


def test_cohens_kappa_of_a_known_two_by_two_table():
    # rows: grader A yes/no, columns: grader B yes/no -> [[20, 5], [10, 15]]
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert round(cohens_kappa(a, b), 10) == 0.4  # observed 0.7, chance 0.5
    assert cohens_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    assert round(cohens_kappa([1, 0, float("nan"), 0], [1, 0, 1, 1]), 4) == 0.4  # the item with no verdict is left out
    assert math.isnan(cohens_kappa([1, 1, 1], [1, 1, 1]))  # one label only: kappa is undefined
    with pytest.raises(CourseError, match="one label from each grader"):
        cohens_kappa([1, 0], [1])
