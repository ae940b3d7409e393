"""Tokenizers: characters, and a byte-level byte-pair encoding trained on the course corpus.

Taught in book/01_transformer.md. The BPE works on UTF-8 bytes, so every string round-trips:
``tok.decode(tok.encode(s)) == s`` for any text, including text the tokenizer never saw.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ._checks import check_ids, check_int
from .files import atomic_write_text

MAX_VOCAB = 1 << 20  # a larger vocabulary is a typo, not a tokenizer

# Split text into word-like pieces before merging, so merges never cross a word boundary:
# a run of letters with its leading space, a run of digits, other symbols, or whitespace.
_PIECE = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+")


class CharTokenizer:
    """One token per character of a fixed alphabet (learned from a text)."""

    def __init__(self, chars: str | list[str]):
        if not isinstance(chars, str | list | tuple) or \
                not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise TypeError("CharTokenizer: chars must be a string or a list of single "
                            "characters")
        chars = sorted(set(chars))
        if not chars:
            raise ValueError("CharTokenizer: the alphabet is empty")
        self.itos = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.train: text must be a str, got "
                            f"{type(text).__name__}")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.encode: text must be a str, got "
                            f"{type(text).__name__}")
        unknown = sorted(set(text) - self.stoi.keys())
        if unknown:
            raise ValueError(f"CharTokenizer.encode: characters not in the alphabet: "
                             f"{unknown[:10]}")
        return [self.stoi[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        ids = check_ids("CharTokenizer.decode", ids, self.vocab_size)
        return "".join(self.itos[i] for i in ids)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps({"type": "char", "chars": self.itos}))


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """Load a tokenizer saved by either class (the file says which)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"load_tokenizer: no tokenizer file at {path}")
    data = _read_json(path, "load_tokenizer")
    kind = data.get("type")
    if kind == "char":
        if not isinstance(data.get("chars"), list):
            raise ValueError(f"load_tokenizer: {path} has no list of chars")
        return CharTokenizer(data["chars"])
    if kind == "byte-bpe":
        return BPETokenizer.load(path)
    raise ValueError(f"load_tokenizer: {path} has unknown tokenizer type {kind!r}")


def _read_json(path: Path, where: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{where}: {path} is not a JSON tokenizer file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: {path} is not a JSON object")
    return data


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer:
    """Byte-level BPE: 256 byte tokens, then one new token per learned merge.

    Training repeatedly finds the most frequent adjacent pair of tokens in the corpus (counted
    within word pieces) and gives it a new id. Encoding replays the merges in the order they
    were learned. Ties between equally frequent pairs go to the smallest pair, so training is
    deterministic.
    """

    def __init__(self, merges: list[tuple[int, int]] | None = None,
                 special_tokens: list[str] | None = None):
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for k, pair in enumerate(merges or []):
            if isinstance(pair, str | bytes) or len(pair) != 2:
                raise ValueError(f"BPETokenizer: merges[{k}] must be a pair of ids, got {pair!r}")
            pair = (check_int("BPETokenizer", f"merges[{k}][0]", pair[0]),
                    check_int("BPETokenizer", f"merges[{k}][1]", pair[1]))
            if pair[0] not in self.vocab or pair[1] not in self.vocab:
                raise ValueError(f"BPETokenizer: merge {pair} refers to an unknown token")
            if pair in self.merges:
                raise ValueError(f"BPETokenizer: merges[{k}] = {pair} repeats an earlier merge")
            new_id = 256 + len(self.merges)
            self.merges[pair] = new_id
            self.vocab[new_id] = self.vocab[pair[0]] + self.vocab[pair[1]]
        self.special_tokens: dict[str, int] = {}
        for s in special_tokens or []:
            if not isinstance(s, str) or not s or s in self.special_tokens:
                raise ValueError(f"BPETokenizer: special_tokens must be distinct non-empty "
                                 f"strings, got {s!r}")
            self.special_tokens[s] = 256 + len(self.merges) + len(self.special_tokens)
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: list[str] | None = None,
              ) -> BPETokenizer:
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.train: text must be a str, got {type(text).__name__}")
        vocab_size = check_int("BPETokenizer.train", "vocab_size", vocab_size, high=MAX_VOCAB)
        n_special = len(special_tokens or [])
        if vocab_size < 256 + n_special:
            raise ValueError(f"BPETokenizer.train: vocab_size must be >= {256 + n_special}, "
                             f"got {vocab_size}")
        pieces = Counter(_PIECE.findall(text))
        words = [(list(p.encode("utf-8")), c) for p, c in pieces.items()]
        merges: list[tuple[int, int]] = []
        for new_id in range(256, vocab_size - n_special):
            counts: Counter = Counter()
            for ids, c in words:
                for pair in zip(ids, ids[1:]):
                    counts[pair] += c
            if not counts:
                break  # every piece is a single token already
            best = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
            merges.append(best)
            words = [(_merge(ids, best, new_id), c) for ids, c in words]
        return cls(merges, special_tokens)

    def _encode_piece(self, piece: str) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        ids = list(piece.encode("utf-8"))
        while len(ids) >= 2:
            # the pair that was learned first is merged first
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = _merge(ids, pair, self.merges[pair])
        if len(self._cache) < 100_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode: text must be a str (expected str), got "
                            f"{type(text).__name__}")
        if allow_special and self.special_tokens:
            pattern = "(" + "|".join(re.escape(s) for s in self.special_tokens) + ")"
            out: list[int] = []
            for part in re.split(pattern, text):
                if part in self.special_tokens:
                    out.append(self.special_tokens[part])
                elif part:
                    out.extend(self.encode(part))
            return out
        return [i for piece in _PIECE.findall(text) for i in self._encode_piece(piece)]

    def decode(self, ids: list[int]) -> str:
        ids = check_ids("BPETokenizer.decode", ids, self.vocab_size)
        inverse_special = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        chunks = [self.vocab[i] if i in self.vocab else inverse_special[i] for i in ids]
        return b"".join(chunks).decode("utf-8", errors="replace")

    def token_strings(self, ids: list[int]) -> list[str]:
        """Each id as the text it stands for (bytes shown with replacement if not UTF-8)."""
        ids = check_ids("BPETokenizer.token_strings", ids, self.vocab_size)
        return [self.decode([i]) for i in ids]

    def save(self, path: str | Path) -> None:
        data = {"type": "byte-bpe", "merges": [list(p) for p in self.merges],
                "special_tokens": list(self.special_tokens)}
        atomic_write_text(path, json.dumps(data))

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        path = Path(path)
        if not path.exists():
            raise ValueError(f"BPETokenizer.load: no tokenizer file at {path}")
        data = _read_json(path, "BPETokenizer.load")
        if data.get("type") != "byte-bpe" or not isinstance(data.get("merges"), list):
            raise ValueError(f"BPETokenizer.load: {path} is not a byte-bpe tokenizer file")
        return cls(data["merges"], data.get("special_tokens"))
