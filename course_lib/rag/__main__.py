"""Ask this book: ``python -m course_lib.rag ask "How does LoRA work?"``.

Prints the best passages of the course's chapter sources, each with its chapter file and
section title. The dense methods take the passages' vectors from the shipped store
(``course_lib/weights/book-minilm.safetensors``); passages edited since are embedded once and
kept in a user cache (``store.user_cache_path()``), so the next question embeds only the
question. Glued numbers are shown as the last book build computed them, else as
``[value: name]``; the index itself holds the chapter sources as written.
``python -m course_lib.rag index`` embeds the whole book again and rewrites the store.
Taught in book/07_rag_agents.md, "Ask this book".
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from course_lib.rag.corpora import book_passages, fill_glue, glued_values, plain_text
from course_lib.rag.pipeline import METHODS, Retriever
from course_lib.rag.store import BOOK_STORE, stored_embeddings, user_cache_path, write_store


def ask(question: str, k: int = 3, method: str = "hybrid", book_dir=None, cache=None,
        build_dir=None) -> list[dict]:
    """The ``k`` best passages of the book for a question, as dicts (file, section, text).

    Retrieval runs on the sources as written (``{glue}`` roles and all, as the shipped store
    was embedded); the returned text has each glued value filled in from the book build in
    ``build_dir`` (default ``_build/jupyter_execute/book``), or ``[value: name]``, and is then
    made plain (``plain_text``: roles, maths and Markdown marks written out). ``cache``
    is a file for the vectors of passages the shipped store lacks (None: embed them, keep
    nothing)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("ask: question must be a non-empty str")
    passages = book_passages(book_dir)
    texts = [f"{p.title}\n{p.text}" for p in passages]
    embeddings = None if method == "bm25" else stored_embeddings(texts, cache=cache)[0]
    retriever = Retriever(texts, dense=False, embeddings=embeddings)
    hits, values = [], {}
    for i in retriever.rank(question, method, k):
        p = passages[i]
        if p.source not in values:
            values[p.source] = glued_values(p.source, build_dir)
        hits.append({"file": p.source, "section": p.title,
                     "text": plain_text(fill_glue(p.text, values[p.source]))})
    return hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.rag",
                                     description="Retrieve passages from the course's chapters.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_ask = sub.add_parser("ask", help="print the best passages for a question")
    p_ask.add_argument("question")
    p_ask.add_argument("-k", type=int, default=3, help="how many passages (default 3)")
    p_ask.add_argument("--method", choices=METHODS, default="hybrid")
    p_ask.add_argument("--book-dir", default=None, help="folder of chapter sources")
    p_index = sub.add_parser("index", help="embed the book's passages and rewrite the store")
    p_index.add_argument("--book-dir", default=None, help="folder of chapter sources")
    p_index.add_argument("--out", default=str(BOOK_STORE), help="the store to write")
    args = parser.parse_args(argv)
    if args.command == "index":
        texts = [f"{p.title}\n{p.text}" for p in book_passages(args.book_dir)]
        record = write_store(texts, args.out, how_made="python -m course_lib.rag index")
        print(f"wrote {args.out}: {record['n_texts']} passages, sha256 {record['sha256'][:12]}")
        return 0
    if args.k < 1:
        parser.error("-k must be >= 1")
    hits = ask(args.question, args.k, args.method, args.book_dir, cache=user_cache_path())
    for rank, hit in enumerate(hits, 1):
        print(f"[{rank}] {hit['file']} - {hit['section']}")
        print(textwrap.indent(textwrap.fill(hit["text"], 92), "    "))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
