"""course_lib.rag.store: MiniLM vectors stored by the sha256 of their text, and the shipped
store of this book's passages (chapter 7 takes the book's vectors from it)."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from course_lib import rag
from course_lib.checkpoint import sha256_file
from course_lib.rag.__main__ import main as rag_main
from course_lib.rag.store import load_store

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["Runa Stadol plays the bagpipes.", "The ferry leaves at nine.",
         "GPTQ quantizes one column at a time."]


def test_text_key_is_the_sha256_of_the_text():
    assert rag.text_key("a") == rag.text_key("a") != rag.text_key("a ")
    assert len(rag.text_key("")) == 32
    with pytest.raises(TypeError, match="str"):
        rag.text_key(b"a")


def test_stored_vectors_are_the_embeddings_and_only_new_texts_are_embedded(tmp_path):
    path = tmp_path / "s.safetensors"
    record = rag.write_store(TEXTS + TEXTS[:1], path, how_made="test")  # a duplicate: once
    assert record["n_texts"] == 3 and record["sha256"] == sha256_file(path)
    assert json.loads(path.with_suffix(".json").read_text()) == record
    fresh = rag.embed(TEXTS + ["A text the store has not seen."])
    got, n_new = rag.stored_embeddings(TEXTS, path)
    assert n_new == 0
    np.testing.assert_allclose(got, fresh[:3], atol=1e-6)
    got, n_new = rag.stored_embeddings(["A text the store has not seen.", TEXTS[1]], path)
    assert n_new == 1
    np.testing.assert_allclose(got, fresh[[3, 1]], atol=1e-6)
    got, n_new = rag.stored_embeddings(TEXTS, tmp_path / "absent.safetensors")  # no store
    assert n_new == 3
    np.testing.assert_allclose(got, fresh[:3], atol=1e-6)


def test_a_broken_store_is_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    save_file({"keys": np.zeros((2, 32), np.uint8),
               "embeddings": np.zeros((2, 384), np.float64)}, str(path))
    with pytest.raises(ValueError, match="float32"):
        load_store(path)
    vectors = np.zeros((2, 384), np.float32)
    vectors[1, 3] = np.nan
    save_file({"keys": np.zeros((2, 32), np.uint8), "embeddings": vectors}, str(path))
    with pytest.raises(ValueError, match="NaN"):
        load_store(path)
    with pytest.raises(TypeError, match="list of str"):
        rag.stored_embeddings("one string", path)
    with pytest.raises(ValueError, match="empty"):
        rag.write_store([], tmp_path / "empty.safetensors")


def test_the_index_command_writes_a_store_of_the_book(tmp_path):
    (tmp_path / "01_x.md").write_text("# One\n\nA paragraph about attention, long enough to "
                                      "be kept as a passage of the book.\n", encoding="utf-8")
    out = tmp_path / "store.safetensors"
    assert rag_main(["index", "--book-dir", str(tmp_path), "--out", str(out)]) == 0
    texts = [f"{p.title}\n{p.text}" for p in rag.book_passages(tmp_path)]
    assert rag.stored_embeddings(texts, out)[1] == 0


def test_the_shipped_book_store_matches_its_record_and_the_encoder():
    record = json.loads(rag.BOOK_STORE.with_suffix(".json").read_text())
    assert record["sha256"] == sha256_file(rag.BOOK_STORE)
    store = load_store(rag.BOOK_STORE)
    assert len(store) == record["n_texts"]
    texts = [f"{p.title}\n{p.text}" for p in rag.book_passages()]
    stored = [t for t in texts if rag.text_key(t) in store]
    # edits to the book leave their passages to be embedded at run time; past half, chapter 7
    # spends most of its time embedding again
    assert len(stored) >= 0.5 * len(texts), (
        f"only {len(stored)} of {len(texts)} book passages are in {rag.BOOK_STORE.name}: run "
        "`python -m course_lib.rag index`")
    sample = stored[:: max(1, len(stored) // 6)][:6]
    np.testing.assert_allclose(np.stack([store[rag.text_key(t)] for t in sample]),
                               rag.embed(sample), atol=1e-5)
