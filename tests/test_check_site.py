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
