import random

import pytest

from course_lib import data
from course_lib.tokenizer import BPETokenizer, CharTokenizer


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(data.corpus_text("train", n_stories=400), vocab_size=400,
                              special_tokens=["<|mask|>"])


ODD_TEXTS = [
    "", " ", "\n\n", "Once upon a time", "héllo wörld ✓ 你好 🙂", "a\tb\r\nc", "1234567890",
    "   leading and trailing   ", "\x00\x01 control", "zzzzzzzz qqq",
]


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_bpe_round_trips_any_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_round_trips_random_unicode(bpe):
    rng = random.Random(0)
    for _ in range(200):
        s = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(160, 0x2FFF),
                                    rng.randrange(0x1F300, 0x1F64F)]))
                    for _ in range(rng.randrange(0, 40)))
        assert bpe.decode(bpe.encode(s)) == s


def test_bpe_compresses_the_corpus(bpe):
    text = data.corpus_text("val", n_stories=400)
    ids = bpe.encode(text)
    assert len(text.encode()) / len(ids) > 2.5   # several bytes per token on in-domain text
    assert max(ids) < bpe.vocab_size
    bigger = BPETokenizer.train(data.corpus_text("train", n_stories=400), vocab_size=500)
    assert len(bigger.encode(text)) < len(ids)      # more merges, fewer tokens


def test_bpe_training_is_deterministic():
    text = data.corpus_text("train", n_stories=100)
    a = BPETokenizer.train(text, 300)
    b = BPETokenizer.train(text, 300)
    assert a.merges == b.merges


def test_bpe_save_load(bpe, tmp_path):
    bpe.save(tmp_path / "tok.json")
    again = BPETokenizer.load(tmp_path / "tok.json")
    text = "Once upon a time, there was a brave fox named Zoe. <|mask|>"
    assert again.encode(text, allow_special=True) == bpe.encode(text, allow_special=True)
    assert again.vocab_size == bpe.vocab_size == 400


def test_special_tokens(bpe):
    ids = bpe.encode("a <|mask|> b", allow_special=True)
    assert bpe.special_tokens["<|mask|>"] in ids
    assert bpe.special_tokens["<|mask|>"] not in bpe.encode("a <|mask|> b")
    assert bpe.decode(ids) == "a <|mask|> b"


def test_char_tokenizer_round_trip_and_unknown():
    tok = CharTokenizer.train("hello world")
    assert tok.decode(tok.encode("hello")) == "hello"
    assert tok.vocab_size == len(set("hello world"))
    with pytest.raises(ValueError, match="not in the alphabet"):
        tok.encode("xyz")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([999])


def test_bpe_bad_input(bpe, tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("abc", 100)
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([10**6])
    with pytest.raises(ValueError, match="expected str"):
        bpe.encode(b"bytes")
    with pytest.raises(ValueError, match="no tokenizer file"):
        BPETokenizer.load(tmp_path / "missing.json")
