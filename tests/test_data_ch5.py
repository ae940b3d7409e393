import pytest

from course_lib import data


def test_instruction_examples_are_deterministic_and_cover_every_kind():
    a = data.instruction_examples(60, "train", seed=1)
    assert a == data.instruction_examples(60, "train", seed=1)
    assert a != data.instruction_examples(60, "train", seed=2)
    assert {e["kind"] for e in a} == set(data.INSTRUCTION_KINDS)
    for e in a:  # the answer is stated in the story (mood is implied by a feeling word)
        story = e["instruction"]
        if e["kind"] != "mood":
            assert e["response"] in story
        else:
            assert e["response"] in ("happy", "sad")


def test_held_out_split_uses_new_stories_and_new_phrasing():
    train = data.instruction_examples(600, "train")
    test = data.instruction_examples(60, "test")
    phr = data.instruction_examples(60, "test_phrasing")
    stories = {e["instruction"].rsplit(".", 1)[0] for e in train}
    assert not stories & {e["instruction"].rsplit(".", 1)[0] for e in test}
    question = {e["instruction"].rsplit(". ", 1)[1] for e in train}
    held = {e["instruction"].rsplit(". ", 1)[1] for e in phr}
    assert not question & held


def test_mood_answers_follow_the_feeling_word():
    for e in data.instruction_examples(120, "test", kinds=("mood",)):
        good = any(f" was {w} " in e["instruction"] for w in data.GOOD_FEELINGS)
        assert (e["response"] == "happy") == good


def test_preference_pairs_chosen_has_the_requested_mood():
    for p in data.preference_pairs(50, seed=3):
        good = any(f" was {w}" in p["chosen"] for w in data.GOOD_FEELINGS)
        assert good == (p["mood"] == "happy")
        assert p["mood"] in p["prompt"]
        assert p["chosen"] != p["rejected"]


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_bad_counts(bad):
    with pytest.raises(ValueError, match="n must"):
        data.instruction_examples(bad)
    with pytest.raises(ValueError, match="n must"):
        data.preference_pairs(bad)


def test_bad_split_and_kind():
    with pytest.raises(ValueError, match="split"):
        data.instruction_examples(3, "dev")
    with pytest.raises(ValueError, match="kinds"):
        data.instruction_examples(3, kinds=("weather",))


def test_ending_pairs_and_the_gold_rule():
    pairs = data.ending_pairs(40, seed=2)
    assert pairs == data.ending_pairs(40, seed=2)
    for p in pairs:
        assert data.is_happy_ending(p["prefix"], p["chosen"])
        assert not data.is_happy_ending(p["prefix"], p["rejected"])
    p = pairs[0]
    name = p["prefix"].split("named ")[1].split(".")[0]
    # malformed, wrong name, or a happy word in the wrong sentence: not a happy ending
    assert not data.is_happy_ending(p["prefix"], p["chosen"] + " And more.")
    assert not data.is_happy_ending(p["prefix"], p["chosen"].replace(name, "Nobody"))
    assert not data.is_happy_ending(p["prefix"], f" {name} was glad glad.")
    with pytest.raises(ValueError, match="story opening"):
        data.is_happy_ending("Hello there.", p["chosen"])
    with pytest.raises(TypeError):
        data.is_happy_ending(p["prefix"], None)
    with pytest.raises(ValueError, match="n must"):
        data.ending_pairs(0)
