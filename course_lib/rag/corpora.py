"""The chapter's three corpora with their questions: the town (private facts), Python's own
documentation (real text), and this book's chapter sources (for "ask this book").

Taught in book/07_rag_agents.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from course_lib.rag.chunking import chunk_text

__all__ = ["Passage", "pydoc_passages", "PYDOC_QUESTIONS", "book_passages", "BOOK_QUESTIONS",
           "BOOK_DIR", "BOOK_BUILD", "glued_values", "fill_glue", "plain_text"]

BOOK_DIR = Path(__file__).resolve().parents[2] / "book"
# Jupyter Book writes each executed chapter's glued outputs to <stem>.glue.json here
BOOK_BUILD = Path(__file__).resolve().parents[2] / "_build" / "jupyter_execute" / "book"
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")


@dataclass(frozen=True)
class Passage:
    """A retrievable unit: its text, where it comes from (``source``) and its section title."""

    text: str
    source: str
    title: str


def pydoc_passages(max_chars: int = 400) -> list[Passage]:
    """One passage per topic of the Python documentation that ships with CPython
    (``pydoc_data.topics``, what ``help("try")`` prints, from the course's snapshot of Python
    3.11.7, so another Python gives the same corpus): the topic's opening ``max_chars``
    characters, cut at a sentence or line where possible."""
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 50:
        raise ValueError(f"pydoc_passages: max_chars must be an int >= 50, got {max_chars!r}")
    from course_lib.corpora import pydoc_topics

    topics = pydoc_topics()

    out = []
    for key in sorted(topics):
        body = re.sub(r"\n\s*\n", "\n", topics[key]).strip()
        head = chunk_text(body, max_chars, 0, by="recursive")[0].text
        out.append(Passage(head, key, body.splitlines()[0].strip()))
    return out


# Written before any retriever was run on this corpus, in a user's words, not the docs'.
# Each question names the pydoc topic that answers it. The last half is held out.
PYDOC_QUESTIONS = [
    ("How do I run cleanup code whether or not an exception happened?", "try"),
    ("How do I leave a loop early?", "break"),
    ("How do I skip to the next iteration of a loop?", "continue"),
    ("What does a statement that does nothing look like?", "pass"),
    ("How can a function hand back a value to its caller?", "return"),
    ("How do I make a generator produce values one at a time?", "yield"),
    ("How do I bring a module into my program?", "import"),
    ("How do I define a small anonymous function inline?", "lambda"),
    ("How do I change a variable of the module from inside a function?", "global"),
    ("How can an inner function rebind a name of the enclosing function?", "nonlocal"),
    ("How do I signal an error myself?", "raise"),
    ("How do I check a condition while debugging and stop if it is false?", "assert"),
    ("How do I remove a name or an item from a list?", "del"),
    ("How do I repeat code as long as a condition is true?", "while"),
    ("How are objects acquired and released automatically by a block?", "with"),
    ("Which values count as false in a condition?", "truth"),
    ("How do I write a number in hexadecimal or with underscores?", "integers"),
    ("How is an object turned into a string inside braces of a format string?", "formatstrings"),
    ("What are the methods for changing letters to upper case or splitting text?",
     "string-methods"),
    ("How do I take a part of a sequence with start and stop?", "slicings"),
    ("What happens when a name is not found at run time?", "naming"),
    ("How do I write a complex number literal?", "imaginary"),
    ("What operations can change a list in place?", "typesseq-mutable"),
    ("How do I define a class?", "class"),
    ("What does the pdb module let me do?", "debugger"),
    ("Which operators shift the bits of an integer?", "shifting"),
    ("How do I wait for a coroutine result?", "await"),
    ("How does a dictionary map keys to values?", "typesmapping"),
    ("Which operator binds more tightly than another?", "operator-summary"),
    ("What does the ellipsis object mean?", "bltin-ellipsis-object"),
    ("How do I write a literal with a decimal point or an exponent?", "floating"),
    ("How do I choose between branches on a condition?", "if"),
]


def _prose_lines(text: str):
    """The lines of a MyST notebook a reader reads as prose: front matter, code cells and
    plain code blocks (a shell command, a listing) are dropped; the body of a directive (a
    figure caption, an admonition) is kept without its fences and ``:option:`` lines."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    in_code = in_directive = False
    for line in text.splitlines():
        fence = line.startswith("```")
        if in_code:
            in_code = not fence
        elif in_directive and fence:
            in_directive = False
        elif fence:
            in_directive = line.startswith("```{") and not line.startswith("```{code-cell")
            in_code = not in_directive
        elif not (line.startswith(":::") or re.match(r"^:\w+:", line)):
            yield line


def _sections(text: str):
    """(title, prose) for each heading of a MyST notebook (see ``_prose_lines``)."""
    title, buf = "", []
    for line in _prose_lines(text):
        m = re.match(r"^(#{1,3})\s+(.*)", line)
        if m:
            if "".join(buf).strip():
                yield title, re.sub(r"\n{3,}", "\n\n", "\n".join(buf).strip())
            title, buf = m.group(2).strip(), []
        else:
            buf.append(line)
    if "".join(buf).strip():
        yield title, re.sub(r"\n{3,}", "\n\n", "\n".join(buf).strip())


def book_passages(book_dir: str | Path | None = None, max_chars: int = 600) -> list[Passage]:
    """The book's prose cut into passages no longer than ``max_chars`` characters, each with
    its chapter file and section title (code cells are left out: they are code, not answers)."""
    root = Path(book_dir) if book_dir is not None else BOOK_DIR
    files = sorted(p for p in root.glob("*.md") if p.name[:2].isdigit() or p.stem == "intro")
    if not files:
        raise ValueError(f"book_passages: no chapter sources (*.md) in {root}")
    out = []
    for path in files:
        for title, prose in _sections(path.read_text(encoding="utf-8")):
            for c in chunk_text(prose, max_chars, 0, by="recursive"):
                if len(c.text) >= 40:
                    out.append(Passage(c.text, path.name, title))
    return out


def glued_values(chapter: str, build_dir: str | Path | None = None) -> dict[str, str]:
    """name -> the text a reader sees for each value a chapter glues, from the last book
    build (``_build/jupyter_execute/book/<stem>.glue.json``, made by ``make book``); {} when
    the chapter was not built, or its file is unreadable. Only plain-text outputs are kept
    (a figure has none a sentence can show)."""
    if not isinstance(chapter, str) or not chapter:
        raise ValueError(f"glued_values: chapter must be a chapter file name, got {chapter!r}")
    root = BOOK_BUILD if build_dir is None else Path(build_dir)
    path = root / f"{Path(chapter).stem}.glue.json"
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(outputs, dict):
        return {}
    out = {}
    for name, output in outputs.items():
        data = output.get("data") if isinstance(output, dict) else None
        text = data.get("text/plain") if isinstance(data, dict) else None
        if isinstance(text, str) and not any(k.startswith("image/") for k in data):
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
                text = text[1:-1]                  # a str glued without GluedText
            out[name] = text
    return out


def fill_glue(text: str, values: dict[str, str] | None = None) -> str:
    """``text`` with each ``{glue}`name``` role (any ``{glue:...}`` variant) replaced by the
    glued value from ``values`` (see ``glued_values``), or by a readable placeholder
    ``[value: name]`` where the value is not known; other text is left as it is."""
    if not isinstance(text, str):
        raise TypeError(f"fill_glue: text must be a str, got {type(text).__name__}")
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise TypeError(f"fill_glue: values must be a dict, got {type(values).__name__}")
    return GLUE_ROLE.sub(lambda m: values.get(m.group(1).strip(),
                                              f"[value: {m.group(1).strip()}]"), text)


_ROLE = re.compile(r"\{(\w+)(?::\w+)?\}`([^`]*)`")      # {cite}`key`, {ref}`label` ...
_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$", flags=re.S)
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_TEX_SYMBOLS = {"cdot": "·", "times": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥",
                "approx": "≈", "ne": "≠", "neq": "≠", "to": "→", "infty": "∞", "sum": "Σ",
                "prod": "Π", "in": "∈", "pm": "±", "ldots": "...", "dots": "...",
                "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε",
                "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "pi": "π", "sigma": "σ",
                "tau": "τ", "phi": "φ", "Delta": "Δ", "Sigma": "Σ"}


def _tex_to_plain(tex: str) -> str:
    """A formula as plain text: roots, fractions and symbols spelled out, braces dropped."""
    text = tex.strip()
    for _ in range(4):                                  # nested groups, innermost first
        text = re.sub(r"\\(?:text|mathrm|mathbf|mathit|operatorname|boldsymbol)\{([^{}]*)\}",
                      r"\1", text)
        text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", text)
        text = re.sub(r"\\sqrt\{([^{}]*)\}",
                      lambda m: "√" + (m.group(1) if re.fullmatch(r"\w+", m.group(1))
                                       else f"({m.group(1)})"), text)
    text = re.sub(r"\\sqrt\s*(\w)", r"√\1", text)
    text = re.sub(r"\\(left|right|big|Big|bigl|bigr|Bigl|Bigr)\b", "", text)
    text = re.sub(r"\\[,;:! ]", " ", text)
    text = re.sub(r"\\([A-Za-z]+)", lambda m: _TEX_SYMBOLS.get(m.group(1), m.group(1)), text)
    text = text.replace("{", "").replace("}", "").replace("\\", "")
    return re.sub(r"\s+", " ", text).strip()


def plain_text(text: str) -> str:
    """Chapter Markdown as plain readable text, for ``ask``'s answers: MyST roles shown by
    their content (``{cite}`lewis2020` `` -> ``[lewis2020]``, other roles their text), maths
    written out (``$\\sqrt{d_k}$`` -> ``√d_k``), links, bold, italics and code marks dropped.
    Fill glued values first (``fill_glue``): a ``{glue}`` role left here shows its name."""
    if not isinstance(text, str):
        raise TypeError(f"plain_text: text must be a str, got {type(text).__name__}")
    text = _ROLE.sub(lambda m: f"[{m.group(2)}]" if m.group(1) == "cite" else m.group(2), text)
    text = _MATH.sub(lambda m: _tex_to_plain(m.group(1) or m.group(2)), text)
    text = _LINK.sub(r"\1", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)
    return re.sub(r"`([^`]*)`", r"\1", text)


# Questions about the book, written before its index was built, with the chapter that answers.
BOOK_QUESTIONS = [
    ("How much memory does the KV cache take?", "02_memory.md"),
    ("What is ZeRO and how does it split optimizer states across devices?", "02_memory.md"),
    ("How does absmax quantization choose its scale?", "03_quantization.md"),
    ("What is the NF4 data type?", "03_quantization.md"),
    ("How does FlashAttention avoid writing the attention matrix to memory?", "04_attention.md"),
    ("What is grouped-query attention?", "04_attention.md"),
    ("How does byte-pair encoding merge tokens?", "01_transformer.md"),
    ("Why does attention divide by the square root of the head dimension?", "01_transformer.md"),
    ("How does LoRA add a low-rank update to a frozen weight?", "05_finetuning.md"),
    ("How do reciprocal rank fusion and BM25 combine in retrieval?", "07_rag_agents.md"),
    ("How many bits do bf16 and fp16 spend on the exponent?", "03_quantization.md"),
    ("What does online softmax keep as it reads tiles?", "04_attention.md"),
]
