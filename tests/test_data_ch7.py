import pytest

from course_lib import data


def test_town_is_deterministic_and_names_are_unique():
    assert data.town_people(40, seed=3) == data.town_people(40, seed=3)
    assert data.town_people(40, seed=3) != data.town_people(40, seed=4)
    people = data.town_people(200)
    assert len({(p["first"], p["last"]) for p in people}) == 200
    assert len({p["first"] for p in people}) < 20  # first names repeat on purpose


def test_questions_point_at_their_gold_sentence():
    docs = data.town_documents(30, per_page=4)
    qs = data.town_questions(30, per_page=4)
    assert len(qs) == 90
    for q in qs:
        assert docs[q["doc"]][q["start"]:q["end"]] == q["gold"]
        assert q["answer"] in q["gold"]
        first, last = q["person"].split()
        assert first in q["gold"] and last in q["question"]
    # held out by person: no one is in both splits
    dev = {q["person"] for q in qs if q["split"] == "dev"}
    test = {q["person"] for q in qs if q["split"] == "test"}
    assert dev and test and not dev & test


def test_arithmetic_questions_are_exact():
    for q in data.arithmetic_questions(50, digits=4, seed=1):
        a, op, b = q["expression"].split()
        assert len(a) == len(b) == 4
        want = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert q["answer"] == str(want)


@pytest.mark.parametrize("fn", [
    lambda: data.town_people(0), lambda: data.town_people(2.5), lambda: data.town_people(True),
    lambda: data.town_documents(10, per_page=0), lambda: data.town_questions(10, per_person=0),
    lambda: data.town_questions(10, per_person=99), lambda: data.arithmetic_questions(0),
    lambda: data.arithmetic_questions(5, digits=0), lambda: data.arithmetic_questions(5, digits=13),
])
def test_bad_input_is_rejected(fn):
    with pytest.raises(ValueError):
        fn()
