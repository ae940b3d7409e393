"""The Chinese edition's catalogs: check them, count them, and make the Chinese notebooks.

    python tools/translation.py check [PAGE ...]   # every problem in the catalogs, by page
    python tools/translation.py stats              # translated / untranslated / fuzzy per page
    python tools/translation.py notebooks          # zh/book/*.md from book/*.md and the catalogs
    python tools/translation.py notebooks --check  # exit 1 if zh/book/ is not current

The catalogs are `locale/zh_CN/LC_MESSAGES/book/<page>.po`, one per page, made by `make gettext`
(Sphinx's gettext builder, then `sphinx-intl update`). Each message is the MyST source of one
paragraph, heading, list item, table cell or caption. A translation must keep everything a
reader does not read as prose exactly as it is: glued values ({glue}`key`), inline code, math,
citations, link and cross-reference targets. The house rules for the Chinese text:

- terms from `locale/zh_CN/terms.tsv` (the notes' own words); the first use in a page gives the
  English in full-width parentheses: 量化（quantization）;
- full-width Chinese punctuation in Chinese sentences (，。：；？！（）);
- one spacing rule everywhere: a half-width space between a Chinese character and a Latin
  letter, a digit, inline code, math or a role; no space next to full-width punctuation.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locale" / "zh_CN" / "LC_MESSAGES" / "book"
TERMS = ROOT / "locale" / "zh_CN" / "terms.tsv"
BOOK = ROOT / "book"
ZH_BOOK = ROOT / "zh" / "book"

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_PUNCT = "\u3000-\u303f\uff00-\uffef\u2018\u2019\u201c\u201d\u2026\u2014\u00b7"
_CJK_CHAR = re.compile(f"[{CJK}]")

# What must come through a translation unchanged.
_ROLE = re.compile(r"\{(?P<name>[a-zA-Z:_-]+)\}`(?P<body>[^`]*)`")
_CODE = re.compile(r"(?<![}`])`(?P<body>[^`\n]+)`(?!`)")
_MATH = re.compile(r"(?<![\\$])\$(?!\$)(?P<body>[^$\n]+?)(?<![\\$ ])\$(?!\$)")
_DISPLAY_MATH = re.compile(r"\$\$(?P<body>.+?)\$\$", re.S)
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_FOOTNOTE = re.compile(r"\[\^[^\]]+\]")
# Roles whose text a reader reads (the target in <...> must stay, the text is translated).
_TEXT_ROLES = {"ref", "numref", "doc", "term", "download"}

# Spacing: a Chinese character touching a Latin letter, digit, or the start/end of inline code,
# math or a role, with no space between.
_TIGHT_AFTER_CJK = re.compile(f"[{CJK}](?=[A-Za-z0-9`$]|\\{{[a-z])")
_TIGHT_BEFORE_CJK = re.compile(f"(?<=[A-Za-z0-9`$%])[{CJK}]")
_SPACE_AT_PUNCT = re.compile(f"(?: [{CJK_PUNCT}])|(?:[{CJK_PUNCT}] )")
# Half-width punctuation right after a Chinese character, where full-width belongs.
_HALF_PUNCT = re.compile(f"[{CJK}）”][,;:?!]|[{CJK}）”]\\.(?!\\d)|[{CJK}]\\(|\\)[{CJK}]")


def has_chinese(text: str) -> bool:
    return bool(_CJK_CHAR.search(text))


def _strip_roles(text: str) -> str:
    return _ROLE.sub(" ", text)


def protected(text: str) -> Counter:
    """The pieces of a message that must appear unchanged in its translation."""
    pieces: Counter = Counter()
    for m in _ROLE.finditer(text):
        name, body = m["name"], m["body"]
        if name in _TEXT_ROLES:
            target = re.search(r"<([^>]+)>\s*$", body)
            pieces[f"{{{name}}}<{target[1] if target else body}>"] += 1
        else:
            pieces[m.group(0)] += 1
    rest = _ROLE.sub(" ", text)
    for m in _DISPLAY_MATH.finditer(rest):
        pieces["$$" + m["body"].strip() + "$$"] += 1
    rest = _DISPLAY_MATH.sub(" ", rest)
    for m in _CODE.finditer(rest):
        pieces["`" + m["body"] + "`"] += 1
    rest = _CODE.sub(" ", rest)
    for m in _MATH.finditer(rest):
        pieces["$" + m["body"] + "$"] += 1
    for m in _LINK.finditer(rest):
        pieces["](" + m["target"] + ")"] += 1
    for m in _FOOTNOTE.finditer(rest):
        pieces[m.group(0)] += 1
    return pieces


def _unrendered_emphasis(text: str) -> bool:
    """True when `**` or a lone `*` pair survives rendering as literal text (CommonMark will
    not open or close emphasis beside full-width punctuation in some positions)."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(_ROLE.sub("R", text))
    html = re.sub(r"<code>.*?</code>", "", html, flags=re.S)
    html = _DISPLAY_MATH.sub("", _MATH.sub("", html))
    return "**" in html


def _spacing_problems(text: str) -> list[str]:
    """House-style problems in a Chinese string (code, math and role bodies are skipped)."""
    problems = []
    # Look at the prose only: code, math and roles become one Latin letter (they are spaced
    # like Latin words); a link keeps its text.
    prose = _ROLE.sub("R", text)
    prose = _DISPLAY_MATH.sub("M", prose)
    prose = _CODE.sub("C", prose)
    prose = _MATH.sub("M", prose)
    prose = re.sub(r"\[([^\]]*)\]\([^)\s]+\)", r"\1", prose)
    for pattern, what in (
        (_TIGHT_AFTER_CJK, "no space between a Chinese character and what follows"),
        (_TIGHT_BEFORE_CJK, "no space between a Chinese character and what precedes it"),
        (_SPACE_AT_PUNCT, "a space next to full-width punctuation"),
        (_HALF_PUNCT, "half-width punctuation in a Chinese sentence"),
    ):
        m = pattern.search(prose)
        if m:
            lo = max(0, m.start() - 12)
            problems.append(f"{what}: ...{prose[lo:m.end() + 12]}...")
    if _unrendered_emphasis(text):
        problems.append("bold that will not render (** beside full-width punctuation)")
    return problems


def _is_formula(text: str) -> bool:
    """A display-math message: LaTeX, not prose (copying it unchanged is right)."""
    return bool(re.search(r"\\[A-Za-z]+|[=^_{}]", text)) and not re.search(
        r"(?:\b[A-Za-z]{3,}\b[ ,.]+){4}", re.sub(r"\\[A-Za-z]+\{[^}]*\}", " ", text))


def entry_problems(msgid: str, msgstr: str) -> list[str]:
    """What is wrong with one translation ([] when it is fine)."""
    if not msgstr:
        return ["untranslated"]
    problems = []
    want, got = protected(msgid), protected(msgstr)
    missing = want - got
    extra = got - want
    if missing:
        problems.append("changed or lost: " + ", ".join(sorted(missing)))
    if extra:
        problems.append("not in the English: " + ", ".join(sorted(extra)))
    if has_chinese(msgstr):
        problems += _spacing_problems(msgstr)
    elif msgstr == msgid and not _is_formula(msgid) and len(re.findall(
            r"(?<![\w/.-])[A-Za-z]{3,}(?![\w/.-])",
            _strip_roles(_CODE.sub(" ", _MATH.sub(" ", msgid))))) >= 3:
        problems.append("copied, not translated")
    if re.match(r"(?:\d+[.)]|[-+*]|#{1,6}|>)(?: |$)", msgstr):
        # Sphinx parses a translation as a new Markdown block: "1. 词元" would become a list
        # and the heading would silently stay English.
        problems.append("starts like a list, heading or quote: escape it (1\\. or \\+)")
    if msgid.count("\n") != msgstr.count("\n") and msgid.lstrip().startswith(("|", "-")):
        problems.append("line structure differs")
    return problems


def terms() -> list[tuple[str, str]]:
    """(English, Chinese) pairs from terms.tsv that a page must gloss at first use: terms whose
    English is unambiguous as a word (not "key", "value", "loss", ...; those carry a
    parenthesised sense in terms.tsv) and whose Chinese differs from the English."""
    pairs = []
    for line in TERMS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        english, chinese = line.split("\t")
        if "(" in english or "/" in english or "/" in chinese or english == chinese:
            continue
        if english in ("Key takeaways", "loss", "gradient", "weight", "parameter", "bias",
                       "attention", "policy", "preference", "agent", "retrieval", "rank",
                       "evaluation", "baseline", "seed", "passage", "reader", "held-out"):
            continue        # headings, and everyday words a page may use before its topic
        if "（" in chinese:
            chinese = chinese.split("（")[0]
        pairs.append((english, chinese))
    return pairs


_STRONG = re.compile(r"\*\*|\*")


def glossing_report(pages: list[str] | None = None) -> dict[str, list[str]]:
    """page -> the listed terms it uses (English in its messages, Chinese in its translations)
    but never glosses as 中文（English）: the first use in a page gives the English."""
    import polib

    report = {}
    for page, path in catalogs(pages).items():
        # the page's title (its first message) is not where a term is glossed
        entries = [e for e in polib.pofile(str(path)) if not e.obsolete][1:]
        english = " ".join(e.msgid for e in entries)
        chinese = _STRONG.sub("", " ".join(e.msgstr for e in entries))
        missing = []
        for term_en, term_zh in terms():
            if not re.search(rf"(?<![\w-]){re.escape(term_en)}(?![\w-])", english, re.I):
                continue
            if term_zh not in chinese:
                continue
            glosses = re.findall(rf"{re.escape(term_zh)}[^（。，]{{0,12}}（([^）]*)）", chinese)
            head = term_en.lower().split()[0][:5]
            if not any(head in g.lower() for g in glosses):
                missing.append(f"{term_zh}（{term_en}）")
        report[page] = missing
    return report


def catalogs(pages: list[str] | None = None) -> dict[str, Path]:
    found = {p.stem: p for p in sorted(LOCALE.glob("*.po"))}
    if pages:
        unknown = sorted(set(pages) - set(found))
        if unknown:
            raise SystemExit(f"no catalog for {unknown}; have {sorted(found)}")
        found = {k: v for k, v in found.items() if k in pages}
    return found


def check(pages: list[str] | None = None) -> dict[str, list[str]]:
    """page -> list of problems (untranslated, fuzzy, lost placeholders, house style)."""
    import polib

    report: dict[str, list[str]] = {}
    for page, path in catalogs(pages).items():
        problems = []
        for entry in polib.pofile(str(path)):
            if entry.obsolete:
                continue
            where = f"{page}:{entry.occurrences[0][1] if entry.occurrences else '?'}"
            english = entry.msgid if len(entry.msgid) < 90 else entry.msgid[:87] + "..."
            if "fuzzy" in entry.flags:
                problems.append(f"{where} fuzzy: {english!r}")
            for problem in entry_problems(entry.msgid, entry.msgstr):
                problems.append(f"{where} {problem}: {english!r}")
        report[page] = problems
    return report


def stats() -> dict[str, tuple[int, int, int]]:
    import polib

    out = {}
    for page, path in catalogs().items():
        po = polib.pofile(str(path))
        entries = [e for e in po if not e.obsolete]
        fuzzy = sum("fuzzy" in e.flags for e in entries)
        done = sum(bool(e.msgstr) and "fuzzy" not in e.flags for e in entries)
        out[page] = (done, len(entries) - done - fuzzy, fuzzy)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check")
    p_check.add_argument("pages", nargs="*")
    sub.add_parser("stats")
    p_nb = sub.add_parser("notebooks")
    p_nb.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "check":
        report = check(args.pages or None)
        total = 0
        for problems in report.values():
            for line in problems:
                print(line)
            total += len(problems)
        print(f"{total} problem(s) in {len(report)} catalog(s)")
        return 1 if total else 0
    if args.command == "stats":
        for page, (done, todo, fuzzy) in stats().items():
            print(f"{page:16s} {done:4d} translated {todo:4d} untranslated {fuzzy:3d} fuzzy")
        return 0
    from notebooks_zh import write_all  # noqa: E402  (tools/notebooks_zh.py)

    return write_all(check_only=args.check)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
