"""Synthetic data for the whole course, generated from small grammars, deterministic by seed.

No outside text is used: the story corpus the model organism learns from, and the task sets the
chapters train on, are all written here. Taught in book/01_transformer.md.
"""

from __future__ import annotations

import random

# The story grammar: a few hundred words, so that a ~1M-parameter model can learn it in minutes.
NAMES = ["Tom", "Mia", "Ben", "Lily", "Sam", "Anna", "Max", "Zoe", "Leo", "Ivy", "Finn", "Ruby"]
ANIMALS = ["cat", "dog", "bird", "fox", "rabbit", "frog", "bear", "duck", "mouse", "owl"]
ADJECTIVES = ["little", "big", "happy", "sleepy", "brave", "shy", "clever", "tiny", "old", "kind"]
COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "white", "brown"]
OBJECTS = ["ball", "kite", "hat", "box", "book", "cup", "drum", "boat", "key", "apple", "shell"]
PLACES = ["park", "forest", "garden", "river", "beach", "hill", "farm", "town", "lake", "field"]
HOMES = ["house", "tree", "nest", "hole", "barn", "cave"]
FRIENDS = ["a friend", "its mother", "an old owl", "a small boy", "a girl", "the farmer"]
GOOD_FEELINGS = ["happy", "glad", "excited", "proud"]
BAD_FEELINGS = ["sad", "scared", "worried", "angry"]
WEATHER = ["sunny", "rainy", "windy", "cold", "warm", "cloudy"]

MOODS = ("happy", "sad", "scared")  # the labels of the classification task
MOOD_WORDS = {
    "happy": ["smiled", "laughed", "sang a song", "danced", "jumped for joy", "clapped"],
    "sad": ["cried", "sighed", "looked down", "felt alone", "wept", "stayed quiet"],
    "scared": ["shook", "hid", "ran away", "froze", "trembled", "screamed"],
}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _story(rng: random.Random) -> str:
    name, animal = rng.choice(NAMES), rng.choice(ANIMALS)
    adj, place, home = rng.choice(ADJECTIVES), rng.choice(PLACES), rng.choice(HOMES)
    colour, obj = rng.choice(COLOURS), rng.choice(OBJECTS)
    friend, weather = rng.choice(FRIENDS), rng.choice(WEATHER)
    lines = [
        f"Once upon a time, there was {_article(adj)} {adj} {animal} named {name}.",
        f"{name} lived in a {home} near the {place}.",
        f"One {weather} day, {name} found {_article(colour)} {colour} {obj}.",
    ]
    if rng.random() < 0.5:
        feeling = rng.choice(GOOD_FEELINGS)
        lines.append(f"{name} was {feeling} and showed the {obj} to {friend}.")
        lines.append(f"They played with the {colour} {obj} all day.")
    else:
        feeling = rng.choice(BAD_FEELINGS)
        lines.append(f"But the {obj} fell into the {place}, and {name} was {feeling}.")
        lines.append(f"Then {friend} came and helped {name} find the {obj}.")
    ending = rng.choice([
        f"At night, {name} went back to the {home} and slept well.",
        f"{name} learned that friends help each other.",
        f"The end of the day was {weather}, and {name} smiled.",
    ])
    lines.append(ending)
    return " ".join(lines)


def _check_seed(where: str, seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{where}: seed must be an int, got {seed!r}")


def story_corpus(n_stories: int = 2000, seed: int = 0) -> list[str]:
    """``n_stories`` short English-like stories from the course grammar, the same for a seed."""
    if isinstance(n_stories, bool) or not isinstance(n_stories, int) or n_stories < 1:
        raise ValueError(f"story_corpus: n_stories must be a positive int, got {n_stories!r}")
    _check_seed("story_corpus", seed)
    rng = random.Random(seed)
    return [_story(rng) for _ in range(n_stories)]


def corpus_text(split: str = "train", seed: int = 0, n_stories: int = 4000,
                val_fraction: float = 0.1) -> str:
    """The model organism's text: stories joined by newlines, split into train and val.

    The split is by story (the last ``val_fraction`` of the stories are held out), so no
    validation story is ever seen in training.
    """
    if split not in ("train", "val"):
        raise ValueError(f"corpus_text: split must be 'train' or 'val', got {split!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float) \
            or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"corpus_text: val_fraction must be in (0, 1), got {val_fraction!r}")
    stories = story_corpus(n_stories, seed)
    n_val = max(1, int(round(n_stories * val_fraction)))
    part = stories[:-n_val] if split == "train" else stories[-n_val:]
    return "\n".join(part) + "\n"


# ---------------------------------------------------------------------------------------------
# Number words <-> digits, the encoder-decoder's translation task.
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000, e.g. 342 -> 'three hundred forty two'."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1_000_000:
        raise ValueError(f"number_to_words: n must be an int in [0, 1000000), got {n!r}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    thousands, rest = divmod(n, 1000)
    head = number_to_words(thousands) + " thousand"
    return head + ("" if rest == 0 else " " + number_to_words(rest))


def number_pairs(n: int, seed: int = 0, low: int = 0, high: int = 1000,
                 exclude: set[int] | None = None) -> list[tuple[str, str]]:
    """``n`` distinct (words, digits) pairs with numbers drawn from [low, high)."""
    for name, value in (("n", n), ("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"number_pairs: {name} must be an int, got {value!r}")
    if n < 0:
        raise ValueError(f"number_pairs: n must be >= 0, got {n}")
    _check_seed("number_pairs", seed)
    if not 0 <= low < high <= 1_000_000:
        raise ValueError(f"number_pairs: need 0 <= low < high <= 1000000, got {low}, {high}")
    pool = [x for x in range(low, high) if not exclude or x not in exclude]
    if n > len(pool):
        raise ValueError(f"number_pairs: asked for {n} distinct numbers, only {len(pool)} exist")
    picked = random.Random(seed).sample(pool, n)
    return [(number_to_words(x), str(x)) for x in picked]


# ---------------------------------------------------------------------------------------------
# Mood classification, the encoder-only model's downstream task.
def mood_sentences(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (sentence, label) pairs; the label is the index in ``MOODS`` of what the sentence
    shows. The mood is carried by one verb phrase somewhere in the middle, so a classifier has
    to look at the right token rather than at the position."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"mood_sentences: n must be a positive int, got {n!r}")
    _check_seed("mood_sentences", seed)
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randrange(len(MOODS))
        name, animal, place = rng.choice(NAMES), rng.choice(ANIMALS), rng.choice(PLACES)
        verb = rng.choice(MOOD_WORDS[MOODS[label]])
        text = rng.choice([
            f"In the {place}, the {animal} {verb} when {name} came.",
            f"{name} saw the {animal} near the {place}, and it {verb}.",
            f"The {animal} {verb} at the {place} with {name}.",
        ])
        out.append((text, label))
    return out


# --- chapter 7: private facts and tool traces ---
# A fictional town whose people no pretrained model has read about: the corpus chapter 7
# retrieves from. Each fact is one sentence; later sentences about a person use the first name
# only, and first names repeat across people, so a chunk cut away from its surname is ambiguous.
TOWN = "Veldmoor"
_SYLLABLES = ["bra", "dol", "fen", "gri", "hal", "ket", "lom", "mer", "nis", "ost", "pel",
              "quin", "ros", "sta", "tov", "ulm", "vak", "wen", "yar", "zel"]
_FIRST_NAMES = ["Oskar", "Mira", "Tilde", "Joren", "Ebba", "Lasse", "Runa", "Caspar",
                "Isolde", "Pavel", "Greta", "Anselm"]
_JOBS = ["glassblower", "beekeeper", "ferry pilot", "clockmaker", "cartographer", "cooper",
         "lamplighter", "herbalist", "bookbinder", "stonemason", "organ tuner", "tanner"]
_WORKPLACES = ["Amber Mill", "Old Quay", "Salt Exchange", "Lantern Hall", "Weir House",
               "Copper Yard", "North Gate", "Heron Market"]
_STREETS = ["Harrow Lane", "Mossgate Row", "Tallow Street", "Fennick Way", "Crane Walk",
            "Brisk Hill", "Ashlar Court", "Pike Alley", "Wicker Road", "Gull Terrace"]
_PETS = ["tortoise", "ferret", "goat", "parrot", "hedgehog", "pony", "raven", "lizard"]
_INSTRUMENTS = ["cello", "hurdy-gurdy", "bagpipes", "lute", "accordion", "harp", "oboe",
                "zither"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_FILLER = [
    "The tide in {town} was low that morning.",
    "A cart of turnips rolled past the square.",
    "The council met twice that season and agreed on nothing.",
    "Gulls followed the fishing boats back into the harbour.",
    "Rain had fallen on the marsh for three days.",
    "The bell of the old chapel rang at noon.",
]

# (question templates, the fact sentence, the answer): {first} {last} {value} are filled in.
# Question wording avoids the fact's own verbs where it can, so that word overlap alone is not
# always enough and embeddings have something to add.
_FACT_KINDS = {
    "job": (["What does {first} {last} do for a living?", "What is {first} {last}'s trade?"],
            "{first} works as a {value}."),
    "workplace": (["Where is {first} {last} employed?", "At which place does {first} {last} "
                   "spend the working day?"], "{first} has a post at the {value}."),
    "street": (["Which street is {first} {last}'s home on?", "On what street does "
                "{first} {last} reside?"], "{first} lives at {number} {value}."),
    "pet": (["What kind of animal does {first} {last} keep?", "Which animal is "
             "{first} {last}'s companion?"], "{first} owns a {value} called {petname}."),
    "petname": (["What is the name of {first} {last}'s pet?", "What is {first} {last}'s "
                 "animal called?"], "{first} owns a {pet} called {value}."),
    "month": (["In which month is {first} {last}'s birthday?", "When does {first} {last} "
               "celebrate a birthday?"], "{first} was born in {value}."),
    "year": (["In what year did {first} {last} arrive in " + TOWN + "?", "When did "
              "{first} {last} settle in " + TOWN + "?"], "{first} came to " + TOWN +
             " in {value}."),
    "instrument": (["Which instrument does {first} {last} play?", "What music does "
                    "{first} {last} make?"], "{first} plays the {value} on Sundays."),
}


def _surname(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(2)).capitalize()


def town_people(n_people: int = 60, seed: int = 0) -> list[dict]:
    """``n_people`` fictional residents of Veldmoor, each a dict of attributes (deterministic).

    Full names are unique; first names, jobs and streets repeat, as in a real town.
    Taught in book/07_rag_agents.md.
    """
    if not isinstance(n_people, int) or isinstance(n_people, bool) or not 1 <= n_people <= 2000:
        raise ValueError(f"town_people: n_people must be an int in [1, 2000], got {n_people!r}")
    rng = random.Random(seed)
    people, seen = [], set()
    while len(people) < n_people:
        first, last = rng.choice(_FIRST_NAMES), _surname(rng)
        if (first, last) in seen:
            continue
        seen.add((first, last))
        people.append({
            "first": first, "last": last, "job": rng.choice(_JOBS),
            "workplace": rng.choice(_WORKPLACES), "street": rng.choice(_STREETS),
            "number": rng.randint(1, 99), "pet": rng.choice(_PETS),
            "petname": _surname(rng)[:4].capitalize(), "month": rng.choice(_MONTHS),
            "year": str(rng.randint(1950, 2019)), "instrument": rng.choice(_INSTRUMENTS),
        })
    return people


def _fact_sentence(person: dict, kind: str) -> str:
    fields = dict(person, value=person[kind])
    return _FACT_KINDS[kind][1].format(**fields)


def town_documents(n_people: int = 60, per_page: int = 5, seed: int = 0) -> list[str]:
    """The town register: pages of ``per_page`` people, each introduced by full name, then
    their facts in a shuffled order with a few unrelated sentences between people.

    Taught in book/07_rag_agents.md.
    """
    if not isinstance(per_page, int) or isinstance(per_page, bool) or per_page < 1:
        raise ValueError(f"town_documents: per_page must be a positive int, got {per_page!r}")
    people = town_people(n_people, seed)
    rng = random.Random(seed + 1)
    pages = []
    for start in range(0, len(people), per_page):
        parts = []
        for p in people[start:start + per_page]:
            kinds = [k for k in _FACT_KINDS if k != "petname"]  # the pet sentence holds both
            rng.shuffle(kinds)
            intro = f"{p['first']} {p['last']} is a resident of {TOWN}."
            parts.append(" ".join([intro] + [_fact_sentence(p, k) for k in kinds]))
            parts.append(rng.choice(_FILLER).format(town=TOWN))
        pages.append("\n".join(parts))
    return pages


def town_questions(n_people: int = 60, seed: int = 0, per_person: int = 3,
                   per_page: int = 5) -> list[dict]:
    """Questions about the town with their answer and gold passage (the fact sentence).

    Each dict has ``question``, ``answer``, ``gold`` (the sentence that answers it), ``doc``,
    ``start`` and ``end`` (where the gold sentence sits in ``town_documents(n_people,
    per_page, seed)``: first names repeat, so the span, not the text, says which one),
    ``person`` ("First Last") and ``split``: "dev" (for tuning) or "test" (held out, by
    person, so no test person is seen while tuning). Taught in book/07_rag_agents.md.
    """
    if not isinstance(per_person, int) or not 1 <= per_person <= len(_FACT_KINDS):
        raise ValueError(f"town_questions: per_person must be in [1, {len(_FACT_KINDS)}], "
                         f"got {per_person!r}")
    people = town_people(n_people, seed)
    pages = town_documents(n_people, per_page, seed)
    rng = random.Random(seed + 2)
    out = []
    for i, p in enumerate(people):
        split = "dev" if i % 2 == 0 else "test"
        doc = i // per_page
        intro_at = pages[doc].index(f"{p['first']} {p['last']} is a resident")
        for kind in rng.sample(sorted(_FACT_KINDS), per_person):
            templates = _FACT_KINDS[kind][0]
            question = rng.choice(templates).format(**p)
            gold = _fact_sentence(p, "pet" if kind == "petname" else kind)
            start = pages[doc].index(gold, intro_at)
            out.append({"question": question, "answer": p[kind], "gold": gold, "doc": doc,
                        "start": start, "end": start + len(gold),
                        "person": f"{p['first']} {p['last']}", "kind": kind, "split": split})
    return out


def arithmetic_questions(n: int, digits: int = 3, seed: int = 0) -> list[dict]:
    """``n`` multi-digit arithmetic questions ("What is 482 * 917?") with exact answers,
    for chapter 7's agent. Taught in book/07_rag_agents.md."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"arithmetic_questions: n must be a positive int, got {n!r}")
    if not isinstance(digits, int) or isinstance(digits, bool) or not 1 <= digits <= 12:
        raise ValueError(f"arithmetic_questions: digits must be an int in [1, 12], got {digits!r}")
    rng = random.Random(seed)
    low, high = 10 ** (digits - 1), 10 ** digits - 1
    out = []
    for _ in range(n):
        a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice("+-*")
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        out.append({"question": f"What is {a} {op} {b}?", "expression": f"{a} {op} {b}",
                    "answer": str(value)})
    return out


# --- chapter 5: instruction tasks and preferences ---
# Questions about a story's opening (four sentences), each with an answer the story states.
# Two phrasings per kind are used in training; a third is held out, to test whether a model
# learned the task or only the wording. Taught in book/05_finetuning.md.
INSTRUCTION_KINDS = ("name", "animal", "object", "colour", "place", "mood")
_PHRASINGS = {
    "name": (["Who is this story about?", "What is the {animal} called?"],
             "Name the main character."),
    "animal": (["What kind of animal is {name}?", "Which animal is {name}?"],
               "{name} is what sort of animal?"),
    "object": (["What did {name} find?", "Which thing did {name} find?"],
               "Name the thing that {name} found."),
    "colour": (["What colour was the {obj}?", "Which colour did the {obj} have?"],
               "The {obj} had what colour?"),
    "place": (["Which place did {name} live near?", "What was near the home of {name}?"],
               "Near what place was the home of {name}?"),
    "mood": (["Was {name} happy or sad?", "Did {name} feel happy or sad?"],
             "Tell me if {name} felt happy or sad."),
}
INSTRUCTION_SPLITS = ("train", "test", "test_phrasing")


# Which of the four opening sentences state each kind's answer.
_ANSWER_SENTENCE = {"name": 0, "animal": 0, "place": 1, "object": 2, "colour": 2, "mood": 3}


def _story_opening(rng: random.Random) -> dict:
    """The first four sentences of a story and the facts they state."""
    f = {"name": rng.choice(NAMES), "animal": rng.choice(ANIMALS), "adj": rng.choice(ADJECTIVES),
         "place": rng.choice(PLACES), "home": rng.choice(HOMES), "colour": rng.choice(COLOURS),
         "obj": rng.choice(OBJECTS), "weather": rng.choice(WEATHER)}
    f["mood"] = rng.choice(["happy", "sad"])
    feeling = rng.choice(GOOD_FEELINGS if f["mood"] == "happy" else BAD_FEELINGS)
    name, obj = f["name"], f["obj"]
    f["sentences"] = [
        f"Once upon a time, there was {_article(f['adj'])} {f['adj']} {f['animal']} "
        f"named {name}.",
        f"{name} lived in a {f['home']} near the {f['place']}.",
        f"One {f['weather']} day, {name} found {_article(f['colour'])} {f['colour']} {obj}.",
        f"{name} was {feeling} and showed the {obj} to {rng.choice(FRIENDS)}."
        if f["mood"] == "happy" else f"But the {obj} fell into the {f['place']}, and {name} "
        f"was {feeling}.",
    ]
    f["story"] = " ".join(f["sentences"])
    return f


def instruction_examples(n: int, split: str = "train", seed: int = 0,
                         kinds: tuple[str, ...] = INSTRUCTION_KINDS) -> list[dict]:
    """``n`` instruction examples ``{"kind", "instruction", "response"}``.

    The instruction is two consecutive sentences of a story's opening, one of which states the
    answer, followed by a question; the response is the one-word answer. ``split="train"``
    and ``"test"`` use the training phrasings on different stories (a different random
    stream); ``"test_phrasing"`` asks with the held-out phrasing of each kind. Kinds cycle.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"instruction_examples: n must be a positive int, got {n!r}")
    if split not in INSTRUCTION_SPLITS:
        raise ValueError(f"instruction_examples: split must be one of {INSTRUCTION_SPLITS}, "
                         f"got {split!r}")
    if not kinds or any(k not in INSTRUCTION_KINDS for k in kinds):
        raise ValueError(f"instruction_examples: kinds must be a non-empty subset of "
                         f"{INSTRUCTION_KINDS}, got {kinds!r}")
    stream = 0 if split == "train" else 1  # train and held-out stories never share a stream
    rng = random.Random(f"instructions-{seed}-{stream}-{split}")
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        f = _story_opening(rng)
        where = _ANSWER_SENTENCE[kind]
        first = rng.choice([i for i in (where - 1, where) if 0 <= i <= 2])
        passage = " ".join(f["sentences"][first: first + 2])
        train_phrasings, held_out = _PHRASINGS[kind]
        template = held_out if split == "test_phrasing" else rng.choice(train_phrasings)
        question = template.format(**f)
        answer = {"name": f["name"], "animal": f["animal"], "object": f["obj"],
                  "colour": f["colour"], "place": f["place"], "mood": f["mood"]}[kind]
        out.append({"kind": kind, "instruction": f"{passage} {question}", "response": answer})
    return out


def preference_pairs(n: int, seed: int = 0) -> list[dict]:
    """``n`` preference pairs ``{"prompt", "chosen", "rejected", "mood"}`` for alignment.

    The prompt asks for a story with a mood; both responses are story openings about the same
    character, the chosen one in the requested mood and the rejected one in the other. The
    rule that labels them (the generator knows each story's mood) stands in for a human.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"preference_pairs: n must be a positive int, got {n!r}")
    rng = random.Random(f"preferences-{seed}")
    out = []
    while len(out) < n:
        a, b = _story_opening(rng), _story_opening(rng)
        if a["mood"] == b["mood"]:
            continue
        mood = rng.choice(["happy", "sad"])
        good, bad = (a, b) if a["mood"] == mood else (b, a)
        out.append({"prompt": f"Tell a story where the hero is {mood}.", "mood": mood,
                    "chosen": good["story"], "rejected": bad["story"]})
    return out


def ending_pairs(n: int, seed: int = 0) -> list[dict]:
    """``n`` preference pairs ``{"prefix", "chosen", "rejected"}`` over story endings.

    The prefix is a story's first three sentences; both responses are a fourth sentence the
    grammar could write next, the chosen one happy and the rejected one sad. The labeller is
    the rule ``is_happy_ending``, standing in for a human who prefers happy endings.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"ending_pairs: n must be a positive int, got {n!r}")
    rng = random.Random(f"endings-{seed}")
    out = []
    for _ in range(n):
        f = _story_opening(rng)
        name, obj, place = f["name"], f["obj"], f["place"]
        happy = (f" {name} was {rng.choice(GOOD_FEELINGS)} and showed the {obj} to "
                 f"{rng.choice(FRIENDS)}.")
        sad = f" But the {obj} fell into the {place}, and {name} was {rng.choice(BAD_FEELINGS)}."
        out.append({"prefix": " ".join(f["sentences"][:3]), "chosen": happy, "rejected": sad})
    return out



def is_happy_ending(prefix: str, ending: str) -> bool:
    """The gold rule: is ``ending`` exactly the grammar's happy fourth sentence for ``prefix``
    (the right name and object, a good feeling, a friend from the grammar)?"""
    import re

    if not isinstance(prefix, str) or not isinstance(ending, str):
        raise TypeError("is_happy_ending: prefix and ending must be strings")
    m = re.search(r"named (\w+)\..* found an? \w+ (\w+)\.$", prefix)
    if not m:
        raise ValueError("is_happy_ending: prefix is not a story opening of the grammar")
    name, obj = m.groups()
    feelings = "|".join(GOOD_FEELINGS)
    friends = "|".join(re.escape(f) for f in FRIENDS)
    pattern = rf" {name} was ({feelings}) and showed the {obj} to ({friends})\."
    return re.fullmatch(pattern, ending) is not None
