"""``GPTConfig``, the shape of a transformer, in a module of its own: checkpoint records are
read and compared through it (``checkpoint``, ``models``) without importing the models.

Taught in book/01_transformer.md; ``course_lib.models.GPTConfig`` is the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["GPTConfig"]


@dataclass(init=False)
class GPTConfig:
    """Shape of a transformer; the same config serves all three families.

    Head counts are ``n_heads`` and ``n_kv_heads``, as in ``MultiHeadAttention``. The older
    spellings ``n_head`` and ``n_kv_head`` (in the first checkpoint records) are accepted as
    keywords and readable as attributes; given together with the new name, the old one wins,
    so that ``dataclasses.replace(cfg, n_head=8)`` still works.
    """

    vocab_size: int = 512
    block_size: int = 128      # context length: the most positions the model attends over
    n_layer: int = 4
    n_heads: int = 4
    d_model: int = 128
    n_kv_heads: int | None = None  # None: = n_heads (MHA); 1: MQA; else GQA
    d_ff: int | None = None        # None: 4 * d_model
    dropout: float = 0.0
    bias: bool = True
    pos_emb: str = "learned"       # or "sinusoidal"

    def __init__(self, vocab_size: int = 512, block_size: int = 128, n_layer: int = 4,
                 n_heads: int = 4, d_model: int = 128, n_kv_heads: int | None = None,
                 d_ff: int | None = None, dropout: float = 0.0, bias: bool = True,
                 pos_emb: str = "learned", *, n_head: int | None = None,
                 n_kv_head: int | None = None):
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.n_heads = n_heads if n_head is None else n_head
        self.d_model = d_model
        self.n_kv_heads = n_kv_heads if n_kv_head is None else n_kv_head
        self.d_ff, self.dropout, self.bias, self.pos_emb = d_ff, dropout, bias, pos_emb
        self.__post_init__()

    @classmethod
    def from_dict(cls, config: dict) -> GPTConfig:
        """Build from a checkpoint record's ``config`` (old or new head-count names); unknown
        keys are a ValueError naming them."""
        if not isinstance(config, dict):
            raise TypeError(f"GPTConfig.from_dict: config must be a dict, got "
                            f"{type(config).__name__}")
        known = {f.name for f in fields(cls)} | {"n_head", "n_kv_head"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"GPTConfig.from_dict: unknown keys {unknown}")
        return cls(**config)

    @property
    def n_head(self) -> int:
        return self.n_heads

    @property
    def n_kv_head(self) -> int | None:
        return self.n_kv_heads

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_heads", "d_model"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig: {name} must be a positive int, got {value!r}")
        for name in ("n_kv_heads", "d_ff"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"GPTConfig: {name} must be None or a positive int, "
                                 f"got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"GPTConfig: n_heads={self.n_heads} must divide "
                             f"d_model={self.d_model}")
        kv = self.n_heads if self.n_kv_heads is None else self.n_kv_heads
        if self.n_heads % kv:
            raise ValueError(f"GPTConfig: n_kv_heads={self.n_kv_heads} must divide "
                             f"n_heads={self.n_heads}")
        if self.pos_emb not in ("learned", "sinusoidal"):
            raise ValueError(f"GPTConfig: pos_emb must be 'learned' or 'sinusoidal', "
                             f"got {self.pos_emb!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) \
                or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.bias, bool):
            raise TypeError(f"GPTConfig: bias must be a bool, got {self.bias!r}")

    @property
    def ff_dim(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff
