"""The abstention lesson's data mix (exact counts on the shipped data, no overlap with `unseen`) and its metric."""
import pytest

from llmcourse import CourseError, abstains, abstention_mix, abstention_share
from llmcourse.evaluation.abstention import ABSTENTION
from llmcourse.evaluation.metrics import normalize_answer


def test_the_mix_holds_every_training_wording_of_the_chosen_facts():
    mix = abstention_mix(12, 12, seed=0)
    assert mix.counts() == {"fact rows": 36, "abstention rows": 36, "test questions": 12, "unseen questions": 48}
    abstaining = [r for r in mix.train if r["kind"] == "abstention"]
    assert {r["completion"] for r in abstaining} == {ABSTENTION}
    assert sorted({r["fact_id"] for r in abstaining}) == mix.out_of_scope
    assert ABSTENTION not in {r["completion"] for r in mix.train if r["kind"] == "fact"}
    assert not set(mix.known) & set(mix.out_of_scope)


def test_the_mix_measures_key_facts_on_the_known_facts_test_questions_only():
    mix = abstention_mix(3, 5, seed=1, unseen=4)
    assert mix.counts() == {"fact rows": 9, "abstention rows": 15, "test questions": 3, "unseen questions": 4}
    test = mix.questions[mix.questions["split"] == "test"]
    assert sorted(test["fact_id"]) == mix.known
    assert abstention_mix(3, 5, seed=1, unseen=4).known == mix.known  # the seed decides, nothing else


def test_out_of_scope_questions_do_not_overlap_unseen():
    mix = abstention_mix(12, 211, seed=0)  # every trained fact is in the mix
    unseen = mix.questions[mix.questions["split"] == "unseen"]
    trained_questions = {normalize_answer(r["prompt"]) for r in mix.train}
    assert len(unseen) == 48
    assert not trained_questions & {normalize_answer(q) for q in unseen["question"]}
    assert not {r["fact_id"] for r in mix.train} & set(unseen["fact_id"])


def test_a_mix_asking_for_more_facts_than_the_data_has_says_how_many_there_are():
    with pytest.raises(CourseError, match="223 trained facts"):
        abstention_mix(200, 24)


def test_abstains_on_hand_made_answers():
    declining = [ABSTENTION, "I do not know.", "I'm not sure which year that was.", "Sorry, I can’t answer that.",
                 "I don't have access to Kettlebird's records.", "I have no information about the Hub's colours.",
                 "There is no information about that in my training."]
    answering = ["The K2 warranty lasts 27 months.", "E04 is a temperature sensor fault: stop using the kettle and "
                 "contact support.", "A solid red Hub LED is a hardware fault; contact support.",
                 "Firmware downgrades are not supported.", "I know: it is 94 °C.", ""]
    assert [abstains(a) for a in declining] == [True] * 7
    assert [abstains(a) for a in answering] == [False] * 6


def test_abstention_share_counts_declining_answers():
    assert abstention_share([ABSTENTION, "It is 27 months.", "I'm not sure.", "E17."]) == 0.5
    assert abstention_share([]) == 0.0
