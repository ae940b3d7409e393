"""The site check's link and Binder rules, on small hand-written pages (no browser needed;
.ci/run runs the browser part on the real site)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import check_site  # noqa: E402


def _site(tmp_path: Path) -> Path:
    (tmp_path / "book").mkdir()
    (tmp_path / "index.html").write_text('<a href="book/01_x.html#sec">ok</a>')
    (tmp_path / "book" / "01_x.html").write_text(
        '<h1 id="sec">S</h1><a href="02_y.html">missing</a><a href="#nope">bad anchor</a>'
        '<a href="https://example.org">external</a><a href="#sec">fine</a>'
        '<a href="https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/01_x.md">b</a>')
    return tmp_path


def test_broken_links_and_anchors_are_found(tmp_path):
    root = _site(tmp_path)
    cache = {}
    assert check_site.broken_links(root / "index.html", root, cache) == []
    bad = check_site.broken_links(root / "book" / "01_x.html", root, cache)
    assert bad == ["#nope (no anchor #nope)", "02_y.html (no such file)"]


def test_binder_button_must_open_the_chapter(tmp_path):
    root = _site(tmp_path)
    assert check_site.binder_problem(root / "book" / "01_x.html", root) is None
    page = root / "book" / "01_x.html"
    page.write_text(page.read_text().replace("01_x.md", "99_other.md"))
    assert "does not open book/01_x.md" in check_site.binder_problem(page, root)
    page.write_text("<p>no button</p>")
    assert check_site.binder_problem(page, root) == "no Binder launch button"
    assert check_site.binder_problem(root / "index.html", root) is None   # not a chapter


def test_pages_skips_generated_and_static_files(tmp_path):
    root = _site(tmp_path)
    (root / "_static").mkdir()
    (root / "_static" / "x.html").write_text("")
    (root / "search.html").write_text("")
    assert [p.name for p in check_site.pages(root)] == ["01_x.html", "index.html"]


def _out(kind: str, text: str) -> str:
    return (f'<div class="cell_output docutils container"><div class="output {kind}">'
            f'<div class="highlight"><pre>{text}</pre></div></div></div>')


def test_reader_problems_finds_what_no_reader_should_see():
    bad = "".join([
        _out("stderr", "/tmp/x.py:3: UserWarning: beta"),
        _out("stream", "Loading weights: 100%|####| 103/103 [00:01]"),
        _out("stream", "✗ ch6.mask_2_4: not implemented yet."),
        _out("text_plain", "0.4127"),
        _out("text_plain", "{'magnitude': '0.0412'}"),
        _out("text_plain", "('contextual', 0.33, 3)"),
        '<p>keeps <span class="output text_plain">(1, 708)</span> weights</p>',
        "<p>raw {glue:text}`name` and {cite}`key` left in the text</p>",
        '<img src="../_images/ab.png" alt="../_images/ab.png">',
        "<table><thead><tr>" + "<th>h</th>" * 8 + "</tr></thead></table>",
    ])
    found = check_site.reader_problems(bad)
    for what in ("stderr", "progress bar", "warning", "not implemented", "bare number",
                 "raw dict", "raw tuple", "as a tuple", "raw MyST markup", "file path",
                 "8 columns"):
        assert any(what in f for f in found), (what, found)


def test_reader_problems_passes_what_a_reader_should_see():
    good = "".join([
        _out("stream", "✓ ch6.mask_2_4: the algorithm is right: all 3 cases agree."),
        _out("text_plain", '{\n  "name": "calculator",\n  "parameters": {}\n}'),  # JSON schema
        '<p>keeps <span class="output text_plain">1,708</span> weights</p>',
        "<pre><code>{glue}`name` is how a page shows a glued number</code></pre>",
        '<img src="../_images/ab.png" alt="Perplexity against sparsity">',
        "<table><thead><tr>" + "<th>h</th>" * 6 + "</tr></thead></table>",
    ])
    assert check_site.reader_problems(good) == []


def test_the_site_is_served_over_http(tmp_path):
    import urllib.request
    (tmp_path / "index.html").write_text("<p>hello</p>")
    server, base = check_site.serve(tmp_path)
    try:
        with urllib.request.urlopen(base + "index.html", timeout=10) as r:
            assert r.read() == b"<p>hello</p>"
    finally:
        server.shutdown()


def _edition(root: Path, rel: str, lang: str, switch: str | None, glued: list[str],
             prose: str = "") -> None:
    page = root / rel
    page.parent.mkdir(parents=True, exist_ok=True)
    link = f'<a class="course-language-switch" href="{switch}">x</a>' if switch else ""
    spans = " ".join(f'<span class="output text_plain">{v}</span>' for v in glued)
    output = _out("text_plain", '<span class="output text_plain">9</span>')   # not glue
    page.write_text(f'<html lang="{lang}"><body>{link}<article><p>{prose} {spans}</p>'
                    f"{output}</article></body></html>")


def test_the_two_editions_must_agree(tmp_path):
    chinese = "这是中文的一段话，" * 10
    _edition(tmp_path, "book/01_x.html", "en", "../zh/book/01_x.html", ["1,708", "3.5"])
    _edition(tmp_path, "zh/book/01_x.html", "zh-CN", "../../book/01_x.html",
             ["3.5", "1,708"], chinese)
    en, zh = tmp_path / "book/01_x.html", tmp_path / "zh/book/01_x.html"
    assert check_site.counterpart("book/01_x.html") == "zh/book/01_x.html"
    assert check_site.counterpart("zh/book/01_x.html") == "book/01_x.html"
    assert check_site.glued_values(zh.read_text()) == ["3.5", "1,708"]   # outputs skipped
    assert check_site.edition_problems(en, tmp_path) == []
    assert check_site.edition_problems(zh, tmp_path) == []
    # a glued value that differs, a missing switch, a wrong language, untranslated prose
    _edition(tmp_path, "zh/book/01_x.html", "zh-CN", "../../book/01_x.html", ["3.6", "1,708"],
             chinese)
    assert "only in English: ['3.5'], only here: ['3.6']" in \
        check_site.edition_problems(zh, tmp_path)[0]
    _edition(tmp_path, "zh/book/01_x.html", "en", None, ["3.5", "1,708"], "English only")
    problems = check_site.edition_problems(zh, tmp_path)
    assert "<html lang='en'>" in problems and "no language switch" in problems
    assert any("not translated" in p for p in problems)
    _edition(tmp_path, "book/01_x.html", "en", "../zh/book/02_y.html", [])
    assert "not zh/book/01_x.html" in check_site.edition_problems(en, tmp_path)[0]
    (tmp_path / "book/02_z.html").write_text('<html lang="en"></html>')
    assert check_site.edition_problems(tmp_path / "book/02_z.html", tmp_path) == \
        ["no Chinese page zh/book/02_z.html"]


def test_a_chinese_chapter_opens_the_chinese_notebook_on_binder(tmp_path):
    page = tmp_path / "zh" / "book" / "01_x.html"
    page.parent.mkdir(parents=True)
    url = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/{}"
    page.write_text(f'<a href="{url.format("zh/book/01_x.md")}">b</a>')
    assert check_site.binder_problem(page, tmp_path) is None
    page.write_text(f'<a href="{url.format("book/01_x.md")}">b</a>')
    assert "does not open zh/book/01_x.md" in check_site.binder_problem(page, tmp_path)
