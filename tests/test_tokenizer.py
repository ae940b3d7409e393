import random

import pytest
import torch

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
    with pytest.raises(TypeError, match="expected str"):
        bpe.encode(b"bytes")
    with pytest.raises(ValueError, match="no tokenizer file"):
        BPETokenizer.load(tmp_path / "missing.json")


@pytest.mark.parametrize("ids, error, match", [
    ([1.7], TypeError, "ids must be ints, got 1.7"),
    ([True], TypeError, "ids must be ints"),
    (["7"], TypeError, "ids must be ints"),
    ("abc", TypeError, "ids must be a list of ints"),
    (7, TypeError, "ids must be a list of ints"),
    ([-1], ValueError, r"out of range \[0, "),
    (torch.tensor([1.0]), TypeError, "ids must be an integer tensor"),
    (torch.zeros(2, 2, dtype=torch.long), ValueError, "ids must have 0 or 1 dims"),
])
def test_decode_refuses_what_is_not_token_ids(bpe, ids, error, match):
    with pytest.raises(error, match=match):
        bpe.decode(ids)
    with pytest.raises(error, match=match):
        CharTokenizer.train("abc").decode(ids)
    with pytest.raises(error, match=match):
        bpe.token_strings(ids)


def test_decode_takes_lists_tuples_and_integer_tensors(bpe):
    ids = bpe.encode("hello world")
    text = bpe.decode(ids)
    assert bpe.decode(tuple(ids)) == bpe.decode(torch.tensor(ids)) == text
    assert bpe.decode([]) == ""


@pytest.mark.parametrize("call, error, match", [
    (lambda: BPETokenizer.train("abc", 300.0), TypeError, "vocab_size must be an int"),
    (lambda: BPETokenizer.train("abc", 10**12), ValueError, "vocab_size must be <="),
    (lambda: BPETokenizer.train(b"abc", 300), TypeError, "text must be a str"),
    (lambda: BPETokenizer([(104, 101), (104, 101)]), ValueError, "repeats an earlier merge"),
    (lambda: BPETokenizer([(104, 300)]), ValueError, "unknown token"),
    (lambda: BPETokenizer([(104, 1.5)]), TypeError, r"merges\[0\]\[1\] must be an int"),
    (lambda: BPETokenizer([(1, 2, 3)]), ValueError, r"merges\[0\] must be a pair"),
    (lambda: BPETokenizer(special_tokens=["<a>", "<a>"]), ValueError, "special_tokens"),
    (lambda: BPETokenizer(special_tokens=[""]), ValueError, "special_tokens"),
    (lambda: CharTokenizer(["ab"]), TypeError, "single characters"),
    (lambda: CharTokenizer.train("abc").encode(None), TypeError, "text must be a str"),
])
def test_tokenizer_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_tokenizer_files(tmp_path):
    from course_lib.tokenizer import load_tokenizer

    path = tmp_path / "t.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON tokenizer file"):
        load_tokenizer(path)
    with pytest.raises(ValueError, match="not a JSON tokenizer file"):
        BPETokenizer.load(path)
    path.write_text('{"type": "byte-bpe"}')
    with pytest.raises(ValueError, match="not a byte-bpe tokenizer file"):
        BPETokenizer.load(path)
