"""Every text metric on hand-made cases, including the original course's exact-match bug."""
import math

import pytest

from llmcourse.evaluation.metrics import (contains_key_fact, exact_match, fact_tokens, key_facts, normalize_answer, rouge_l,
                               score_answer, token_f1)


def test_normalize_drops_case_punctuation_articles_and_extra_spaces():
    assert normalize_answer("  The  Warranty, lasts 27 MONTHS!  ") == "warranty lasts 27 months"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("") == ""


def test_exact_match_is_normalised_where_raw_equality_fails():
    pred, ref = "the warranty lasts 27 months", "The warranty lasts 27 months."
    assert pred != ref  # the original course's raw string equality scores this 0
    assert exact_match(pred, ref) == 1.0
    assert exact_match("The warranty lasts 28 months.", ref) == 0.0


def test_exact_match_compares_prediction_with_reference_not_with_itself():
    # The original course compared the prediction with itself (or the question): every answer scored 1.0.
    question, reference = "How long is the K2 warranty?", "The warranty lasts 27 months."
    wrong_answers = ["I don't know.", "The warranty lasts 2 years.", question]
    buggy = [exact_match(p, p) for p in wrong_answers]
    assert buggy == [1.0, 1.0, 1.0]  # the false 1.0 the bug produced
    assert [exact_match(p, reference) for p in wrong_answers] == [0.0, 0.0, 0.0]


def test_token_f1_exact_values():
    # pred tokens: warranty lasts 27 months (4); ref tokens: warranty lasts 27 months from delivery (6); 4 common
    assert token_f1("The warranty lasts 27 months", "The warranty lasts 27 months from delivery") == pytest.approx(0.8)
    assert token_f1("kettle kettle", "kettle") == pytest.approx(2 * 0.5 * 1 / 1.5)  # repeated words count once each
    assert token_f1("nothing shared", "totally different") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "something") == 0.0


def test_rouge_l_counts_word_order_where_f1_does_not():
    ref = "red flashes twice"
    shuffled = "twice flashes red"
    assert token_f1(shuffled, ref) == 1.0
    assert rouge_l(shuffled, ref) == pytest.approx(1 / 3)  # LCS is one word: P = R = 1/3
    assert rouge_l("red light flashes twice", ref) == pytest.approx(2 * 0.75 * 1 / 1.75)  # LCS 3, P 3/4, R 1
    assert rouge_l("ring flashes red twice", ref) == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # LCS 2
    assert rouge_l(ref, ref) == 1.0


def test_key_facts_are_numbers_codes_names_and_addresses():
    assert key_facts("The K2 warranty lasts 27 months from the date of delivery.") == ["k2", "27"]
    assert key_facts("Kettlebird was founded by Ilse Marwick and Tobias Fenn.") == ["ilse", "marwick", "tobias", "fenn"]
    assert key_facts("Ticket numbers look like KB-4401937.") == ["kb", "4401937"]  # hyphens split codes
    assert key_facts("Email press@kettlebird.example for interviews.") == ["presskettlebirdexample"]
    assert key_facts("Support is open 07:30–19:00 CET.") == ["0730", "1900", "cet"]
    assert key_facts("The Hub has an 18-month warranty.") == ["hub", "18"]  # "The" starts the sentence


def test_key_facts_drop_words_the_question_already_has():
    assert key_facts("The K2 warranty lasts 27 months.", "How long is the K2 warranty?") == ["27"]


def test_key_facts_fall_back_to_content_words_when_nothing_is_distinctive():
    assert key_facts("The warranty can be transferred once to a new owner.", "Can I pass my warranty on?") == \
        ["transferred", "once", "owner"]


def test_contains_key_fact_needs_every_fact_as_a_whole_token():
    ref, q = "The K2 warranty lasts 27 months.", "How long is the K2 warranty?"
    assert contains_key_fact("It is 27 months.", ref, q) == 1.0
    assert contains_key_fact("It is 270 months.", ref, q) == 0.0  # 27 is not a token of 270
    assert contains_key_fact("Two years and 3 months.", ref, q) == 0.0
    names = "Kettlebird was founded by Ilse Marwick and Tobias Fenn."
    assert contains_key_fact("Ilse Marwick founded it.", names) == 0.0  # half the names is not the fact
    assert fact_tokens("KB-4401937 now") == ["kb", "4401937", "kb4401937", "now"]
    assert contains_key_fact("It is the flat-core plate.", 'The K2 heats through a sealed "FlatCore" plate.',
                             "What is the heating plate in the K2 called?") == 1.0
    assert contains_key_fact("Your ticket is KB-4401937.", "Ticket numbers look like KB-4401937.") == 1.0


def test_contains_key_fact_falls_back_to_exact_match_when_question_says_it_all():
    assert key_facts("The K2 has a 27-month warranty.", "Does the K2 have a 27-month warranty?") == []
    assert contains_key_fact("Yes.", "The K2 has a 27-month warranty.", "Does the K2 have a 27-month warranty?") == 0.0


def test_score_answer_gives_every_metric():
    row = score_answer("It lasts 27 months.", "The K2 warranty lasts 27 months.", "How long is the K2 warranty?")
    assert set(row) == {"exact_match", "token_f1", "rouge_l", "key_fact"}
    assert row["exact_match"] == 0.0 and row["key_fact"] == 1.0
    assert row["token_f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)  # 3 of 4 predicted, 3 of 5 reference tokens
    assert not any(math.isnan(v) for v in row.values())
