"""course_lib.rag.store: MiniLM vectors stored by the sha256 of their text, and the shipped
store of this book's passages (chapter 7 takes the book's vectors from it)."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from course_lib import rag
from course_lib.checkpoint import sha256_file
from course_lib.rag.__main__ import main as rag_main
from course_lib.rag.corpora import fill_glue, glued_values
from course_lib.rag.store import load_store, user_cache_path

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


def test_a_cache_keeps_the_vectors_the_store_lacks_so_a_second_call_embeds_nothing(tmp_path):
    store, cache = tmp_path / "s.safetensors", tmp_path / "cache" / "edits.safetensors"
    rag.write_store(TEXTS[:2], store)
    texts = TEXTS + ["A sentence edited since the store was written."]
    first, n_first = rag.stored_embeddings(texts, store, cache=cache)
    assert n_first == 2 and cache.exists()
    kept = load_store(cache)                    # exactly the texts the store lacks
    assert set(kept) == {rag.text_key(t) for t in texts[2:]}
    again, n_again = rag.stored_embeddings(texts, store, cache=cache)
    assert n_again == 0
    np.testing.assert_array_equal(again, first)        # exact: float32 written and read back
    # within a tolerance: other batches pad differently, so sums run in another order
    np.testing.assert_allclose(first, rag.embed(texts), atol=1e-6)
    # an edit replaces the cached text: the old vector is dropped, the new one embedded once
    texts[3] = "The same sentence, edited again."
    assert rag.stored_embeddings(texts, store, cache=cache)[1] == 1
    assert set(load_store(cache)) == {rag.text_key(t) for t in texts[2:]}


def test_a_broken_cache_is_embedded_again_and_rewritten(tmp_path):
    store, cache = tmp_path / "s.safetensors", tmp_path / "edits.safetensors"
    rag.write_store(TEXTS[:1], store)
    vectors = rag.embed(TEXTS[1:])
    keys = np.frombuffer(b"".join(rag.text_key(t) for t in TEXTS[1:]), np.uint8).reshape(2, 32)
    save_file({"keys": keys.copy(), "embeddings": 2 * vectors}, str(cache))  # not unit length
    with pytest.raises(ValueError, match="unit length"):
        load_store(cache)
    got, n_new = rag.stored_embeddings(TEXTS, store, cache=cache)
    assert n_new == 2
    np.testing.assert_allclose(got[1:], vectors, atol=1e-6)
    assert rag.stored_embeddings(TEXTS, store, cache=cache)[1] == 0   # rewritten, verified
    cache.write_bytes(b"not a safetensors file")
    assert rag.stored_embeddings(TEXTS, store, cache=cache)[1] == 2


def test_the_user_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_path() == tmp_path / "course_lib" / "book-minilm-edits.safetensors"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_path().parent == tmp_path / "home" / ".cache" / "course_lib"


def test_ask_fills_glued_values_from_the_build_or_names_them(tmp_path, capsys):
    from course_lib.rag.__main__ import ask

    book, build = tmp_path / "book", tmp_path / "build"
    book.mkdir()
    build.mkdir()
    (book / "01_x.md").write_text(
        "# Accuracy\n\nThe reward model ranks the preferred answer first on {glue}`rm_acc` % of "
        "the held-out pairs, and {glue:text}`n_pairs` pairs were held out.\n", encoding="utf-8")
    (build / "01_x.glue.json").write_text(json.dumps(
        {"rm_acc": {"data": {"text/plain": "87.5"}},
         "fig": {"data": {"image/png": "AAAA", "text/plain": "<Figure>"}}}), encoding="utf-8")
    hit = ask("How often is the preferred answer ranked first?", 1, "bm25", book,
              build_dir=build)[0]
    assert "on 87.5 % of" in hit["text"] and "[value: n_pairs] pairs" in hit["text"]
    assert "{glue" not in hit["text"]
    assert glued_values("01_x.md", build) == {"rm_acc": "87.5"}   # no figure's text
    assert glued_values("02_absent.md", build) == {}
    assert fill_glue("{glue}`a` and {glue}`b`", {"a": "1"}) == "1 and [value: b]"
    with pytest.raises(TypeError, match="fill_glue: text"):
        fill_glue(None)


def test_ask_prints_passages_and_nothing_else_and_a_second_ask_embeds_nothing(tmp_path):
    # The command runs as a learner runs it: a fresh interpreter. stderr stays empty (no
    # progress bar, no library warning; the encoder is course code, transformers is never
    # imported), and the passages the shipped store lacks are embedded once, then cached.
    import os
    import subprocess
    import sys

    book = tmp_path / "book"
    book.mkdir()
    (book / "01_x.md").write_text("# Low rank\n\nLoRA trains two thin matrices beside a frozen "
                                  "weight; their product is the update.\n", encoding="utf-8")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    script = ("import sys\nfrom course_lib.rag.__main__ import main\n"
              "import course_lib.rag.store as s\n"
              "calls = []\nembed = s.embed\n"
              "s.embed = lambda texts, *a: calls.append(len(texts)) or embed(texts, *a)\n"
              "main(['ask', 'How does LoRA work?', '--book-dir', sys.argv[1]])\n"
              "print('EMBEDDED', sum(calls), 'TRANSFORMERS', "
              "any(m.split('.')[0] in ('transformers', 'sentence_transformers') "
              "for m in sys.modules))\n")
    runs = [subprocess.run([sys.executable, "-c", script, str(book)], capture_output=True,
                           text=True, env=env, timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0 and run.stderr == "", run.stderr[-2000:]
        assert "[1] 01_x.md - Low rank" in run.stdout
        assert "TRANSFORMERS False" in run.stdout
    assert "EMBEDDED 1 " in runs[0].stdout and "EMBEDDED 0 " in runs[1].stdout
    assert (tmp_path / "cache" / "course_lib" / "book-minilm-edits.safetensors").exists()
