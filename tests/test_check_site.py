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
