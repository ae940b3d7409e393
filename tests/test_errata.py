"""Every Erratum box in a chapter has a label, and the errata page links to each of them."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOX = re.compile(r"^(:::+|```+)\{admonition\}\s*Erratum:\s*(.+)$")


def _boxes():
    for path in sorted((REPO / "book").glob("0*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if BOX.match(line):
                options = []
                for nxt in lines[i + 1:]:
                    if not nxt.startswith(":") or nxt.startswith(":::"):
                        break
                    options.append(nxt)
                yield path.name, BOX.match(line).group(2), options


def test_every_erratum_is_labelled_folded_and_listed():
    errata = (REPO / "book" / "errata.md").read_text(encoding="utf-8")
    boxes = list(_boxes())
    assert len(boxes) >= 15
    for name, title, options in boxes:
        labels = [o.split(":name:", 1)[1].strip() for o in options if o.startswith(":name:")]
        assert labels, f"{name}: Erratum '{title}' has no :name: label"
        assert f"<{labels[0]}>`" in errata, f"errata.md does not link {labels[0]} ({name})"
        assert any("dropdown" in o for o in options), f"{name}: '{title}' is not collapsible"


def test_errata_page_links_only_existing_boxes():
    labels = {o.split(":name:", 1)[1].strip() for _, _, opts in _boxes() for o in opts
              if o.startswith(":name:")}
    linked = re.findall(r"<(erratum-[^>]+)>`", (REPO / "book" / "errata.md").read_text())
    assert linked and set(linked) <= labels
