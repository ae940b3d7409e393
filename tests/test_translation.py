"""The Chinese edition: complete, faithful to the English, and built from the same notebooks.

- every message Sphinx extracts from the English pages today has a Chinese translation in the
  page's catalog, none fuzzy: an English edit that is not translated fails here, naming the
  page and the English text;
- each translation keeps what is not prose (glued values, code, math, link targets) and the
  house style (tools/translation.py);
- the committed Chinese notebooks (zh/book/) are what tools/notebooks_zh.py makes from the
  book and the catalogs, and their code cells are byte-identical to the English;
- a glued value in a translated paragraph renders (the _ext/course_i18n.py fallback), and
  without the fallback it would not;
- the language switch links each page to the same page in the other edition.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import jupytext
import polib
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(ROOT / "_ext"))

import course_i18n  # noqa: E402
import notebooks_zh  # noqa: E402
import translation  # noqa: E402

PAGES = [line.split("file:")[1].strip().split("/")[-1]
         for line in (ROOT / "_toc.yml").read_text().splitlines()
         if "file:" in line or line.startswith("root:")
         for line in [line.replace("root:", "file:")]]


@pytest.fixture(scope="module")
def fresh_templates(tmp_path_factory):
    """The messages of the English pages as they are now (Sphinx's gettext builder, no
    execution: the catalogs hold no output)."""
    out = tmp_path_factory.mktemp("gettext")
    run = subprocess.run([sys.executable, str(TOOLS / "build_book.py"), "gettext",
                          "--outdir", str(out), "--no-execute"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {p.stem: polib.pofile(str(p)) for p in (out / "book").glob("*.pot")}


def test_every_page_has_a_catalog(fresh_templates):
    assert sorted(fresh_templates) == sorted(PAGES)
    assert sorted(translation.catalogs()) == sorted(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_every_english_message_is_translated(page, fresh_templates):
    catalog = {e.msgid: e for e in polib.pofile(str(translation.LOCALE / f"{page}.po"))
               if not e.obsolete}
    missing = []
    for entry in fresh_templates[page]:
        if not entry.msgid.strip():     # an empty message (an image without alt text)
            continue
        have = catalog.get(entry.msgid)
        line = entry.occurrences[0][1] if entry.occurrences else "?"
        if have is None:
            missing.append(f"{page}.md:{line} not in the catalog (run `make gettext`): "
                           f"{entry.msgid[:100]!r}")
        elif not have.msgstr:
            missing.append(f"{page}.md:{line} untranslated: {entry.msgid[:100]!r}")
        elif "fuzzy" in have.flags:
            missing.append(f"{page}.md:{line} fuzzy: {entry.msgid[:100]!r}")
    assert not missing, f"{len(missing)} message(s) of {page}:\n" + "\n".join(missing[:40])


@pytest.mark.parametrize("page", PAGES)
def test_translations_keep_placeholders_and_house_style(page):
    problems = translation.check([page])[page]
    assert not problems, "\n".join(problems[:40])


def test_checker_catches_what_it_should():
    english = "LoRA adds {glue}`n` parameters to $W$ ({ref}`section 3 <lora>`, [notes](notes.md))."
    good = "LoRA 增加 {glue}`n` 个参数到 $W$（{ref}`第 3 节 <lora>`，[原笔记](notes.md)）。"
    assert translation.entry_problems(english, good) == []
    assert translation.entry_problems(english, "") == ["untranslated"]
    for broken, what in [
        (good.replace("{glue}`n`", "{glue}`m`"), "changed or lost"),          # another key
        (good.replace("$W$", "$w$"), "changed or lost"),                       # math edited
        (good.replace("<lora>", "<lora-x>"), "changed or lost"),              # target edited
        (good.replace("](notes.md)", "](errata.md)"), "changed or lost"),
        (good.replace("增加 {glue}", "增加{glue}"), "no space"),
        (good.replace("。", "."), "half-width"),
        (good.replace("（{ref}", "（ {ref}"), "a space next to full-width"),
        ("的**（注意）**是 " + good, "bold that will not render"),
    ]:
        problems = translation.entry_problems(english, broken)
        assert any(what in p for p in problems), (broken, problems)
    heading = translation.entry_problems("1. Tokens", "1. 词元")
    assert any("starts like a list" in p for p in heading), heading
    assert translation.entry_problems("1. Tokens", "1\\. 词元") == []
    prose = "Every chapter ends with exercises that transfer the idea."
    assert any("copied" in p for p in translation.entry_problems(prose, prose))
    formula = r"\mathrm{score}(q, d) = \sum_{t \in q} \mathrm{idf}(t)"
    assert translation.entry_problems(formula, formula) == []


CHAPTERS = [page for page in PAGES if page[:2].isdigit()]


@pytest.mark.parametrize("page", CHAPTERS)
def test_each_chapter_glosses_its_terms(page):
    """The first use of a terms.tsv term in a chapter gives the English: 量化（quantization）."""
    missing = translation.glossing_report([page])[page]
    assert not missing, f"{page} never glosses: {missing}"


def test_glossing_report_finds_an_unglossed_term(tmp_path, monkeypatch):
    catalog = polib.POFile()
    for msgid, msgstr in [("Title", "标题"), ("Quantization maps numbers.", "量化把数映射。"),
                          ("Pruning removes weights.", "**剪枝**（pruning）去掉权重。")]:
        catalog.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
    catalog.save(str(tmp_path / "x.po"))
    monkeypatch.setattr(translation, "LOCALE", tmp_path)
    assert translation.glossing_report(["x"]) == {"x": ["量化（quantization）"]}


def test_chinese_notebooks_are_current():
    status = notebooks_zh.write_all(check_only=True)
    assert status == 0, "zh/book/ differs from the book and catalogs: run `make notebooks-zh`"


@pytest.mark.parametrize("page", notebooks_zh.pages())
def test_chinese_notebook_code_is_the_english_code(page):
    english = jupytext.read(ROOT / "book" / f"{page}.md")
    chinese = jupytext.read(notebooks_zh.ZH_BOOK / f"{page}.md")
    code_en = [(c.source, dict(c.metadata)) for c in english.cells if c.cell_type == "code"]
    code_zh = [(c.source, dict(c.metadata)) for c in chinese.cells if c.cell_type == "code"]
    assert len(code_zh) == len(code_en)
    for i, (a, b) in enumerate(zip(code_en, code_zh)):
        assert a == b, f"{page}: code cell {i} differs"
    assert english.metadata.get("kernelspec") == chinese.metadata.get("kernelspec")
    prose_zh = "".join(c.source for c in chinese.cells if c.cell_type == "markdown")
    chinese_chars = sum(translation.has_chinese(ch) for ch in prose_zh)
    assert chinese_chars > 0.2 * len(prose_zh.replace(" ", "")), f"{page}: prose not Chinese"


def test_notebook_translation_puts_each_message_in_its_block():
    source = textwrap.dedent("""\
        ---
        jupytext: {}
        ---

        # Title

        A paragraph that is
        wrapped over two lines.

        ```{code-cell} ipython3
        # A paragraph that is wrapped over two lines.
        x = 1
        ```

        | a | yes |
        |---|---|
        | b | yes |
        """)

    class E:
        def __init__(self, msgid, msgstr, line):
            self.msgid, self.msgstr, self.occurrences = msgid, msgstr, [("x.md", str(line))]
            self.obsolete, self.flags = False, []

    entries = [E("Title", "标题", 5),
               E("A paragraph that is wrapped over two lines.", "一段话。", 7),
               E("yes", "是", 15), E("a", "甲", 15), E("Title wrapped", "错", 5)]
    text, unplaced = notebooks_zh.translate_text("x", source, entries)
    assert "# 标题\n" in text and "\n一段话。\n" in text
    assert "# A paragraph that is wrapped over two lines.\nx = 1" in text   # code untouched
    assert text.count("| 是 |") == 2 and "| 甲 |" in text and "| b |" in text
    assert [u.msgid for u in unplaced] == ["Title wrapped"]


def test_language_switch_links_the_same_page():
    assert course_i18n.other_edition_href("book/03_quantization", chinese=False) == \
        "../zh/book/03_quantization.html"
    assert course_i18n.other_edition_href("book/03_quantization", chinese=True) == \
        "../../book/03_quantization.html"
    assert course_i18n.other_edition_href("search", chinese=True) == "../search.html"
    for bad in ["", "../x", "book/../../x"]:
        with pytest.raises(ValueError, match="not a page name"):
            course_i18n.other_edition_href(bad, chinese=False)


NOTEBOOK = """\
---
jupytext:
  text_representation: {extension: .md, format_name: myst}
kernelspec: {display_name: Python 3, language: python, name: python3}
---

# Page

```{code-cell} ipython3
from myst_nb import glue
glue("answer", 6 * 7, display=False)
```

The answer is {glue}`answer`.
"""

CATALOG = """\
msgid ""
msgstr ""
"Content-Type: text/plain; charset=utf-8\\n"

msgid "Page"
msgstr "页面"

msgid "The answer is {glue}`answer`."
msgstr "答案是 {glue}`answer`。"
"""


@pytest.mark.parametrize("fallback", [True, False])
def test_glue_in_a_translated_paragraph(tmp_path, fallback):
    """The fallback makes the translated sentence show 42; without it Sphinx warns and the
    value is empty (the pitfall the extension exists for)."""
    (tmp_path / "page.md").write_text(NOTEBOOK)
    messages = tmp_path / "locale" / "zh_CN" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "page.po").write_text(CATALOG)
    extensions = ["myst_nb"] + (["course_i18n"] if fallback else [])
    (tmp_path / "conf.py").write_text(textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(ROOT / "_ext")!r})
        extensions = {extensions!r}
        root_doc = "page"
        language = "zh_CN"
        locale_dirs = ["locale/"]
        gettext_compact = False
        nb_execution_mode = "force"
        exclude_patterns = ["_build"]
        html_theme = "basic"
        """))
    run = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", str(tmp_path),
                          str(tmp_path / "_build")], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    html = (tmp_path / "_build" / "page.html").read_text()
    assert "答案是" in html
    if fallback:
        assert "No key" not in run.stderr, run.stderr
        assert ">42<" in html.replace(" ", "")
    else:
        assert "No key 'answer' found in glue data" in run.stderr
        assert ">42<" not in html.replace(" ", "")
