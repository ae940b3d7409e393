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
