"""Every Erratum and Check box in a chapter has a label, is folded, and the errata page links
to each of them under the right heading: corrections (Erratum) apart from confirmations (Check).
"""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOX = re.compile(r"^(:::+|```+)\{admonition\}\s*(Erratum|Check):\s*(.+)$")
PREFIX = {"Erratum": "erratum-", "Check": "check-"}


def _boxes():
    """(chapter file, kind, title, option lines) for every Erratum or Check box."""
    for path in sorted((REPO / "book").glob("0*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = BOX.match(line)
            if match:
                options = []
                for nxt in lines[i + 1:]:
                    if not nxt.startswith(":") or nxt.startswith(":::"):
                        break
                    options.append(nxt)
                yield path.name, match.group(2), match.group(3), options


def _label(options):
    labels = [o.split(":name:", 1)[1].strip() for o in options if o.startswith(":name:")]
    return labels[0] if labels else None


def _page_sections():
    """The errata page split at its two top-level headings: corrections, confirmations."""
    text = (REPO / "book" / "errata.md").read_text(encoding="utf-8")
    corrections = text.index("\n## Corrections")
    confirmations = text.index("\n## Confirmations")
    assert corrections < confirmations
    return text[corrections:confirmations], text[confirmations:]


def test_every_box_is_labelled_folded_and_listed_under_its_kind():
    corrections, confirmations = _page_sections()
    boxes = list(_boxes())
    kinds = {kind for _, kind, _, _ in boxes}
    assert len(boxes) >= 15 and kinds == {"Erratum", "Check"}
    for name, kind, title, options in boxes:
        label = _label(options)
        assert label, f"{name}: {kind} '{title}' has no :name: label"
        assert label.startswith(PREFIX[kind]), f"{name}: {kind} box labelled {label}"
        section = corrections if kind == "Erratum" else confirmations
        assert f"<{label}>`" in section, f"errata.md does not list {label} ({name}) as a {kind}"
        assert any("dropdown" in o for o in options), f"{name}: '{title}' is not collapsible"


def test_errata_page_links_only_existing_boxes():
    labels = {_label(opts) for *_, opts in _boxes()}
    corrections, confirmations = _page_sections()
    for section, prefix in ((corrections, "erratum-"), (confirmations, "check-")):
        linked = re.findall(r"<((?:erratum|check)-[^>]+)>`", section)
        assert linked and set(linked) <= labels
        assert all(link.startswith(prefix) for link in linked), linked
