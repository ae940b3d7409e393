"""The glossary maps every term of the source notes, and links only to chapters that exist."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GLOSSARY = REPO / "book" / "glossary.md"


def _terms() -> list[str]:
    lines = (REPO / "tests" / "data" / "notes_terms.txt").read_text(encoding="utf-8").splitlines()
    return [t for t in (line.strip() for line in lines) if t and not t.startswith("#")]


def _first_column() -> list[str]:
    cells = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("| The notes"):
            cells += [t.strip() for t in line.split("|")[1].split("/")]
    return cells


def test_every_notes_term_is_in_the_glossary():
    mapped = set(_first_column())
    missing = [t for t in _terms() if t not in mapped]
    assert not missing, f"terms of the notes missing from the glossary: {missing}"
    assert len(_terms()) >= 60


def test_key_terms_of_each_notes_section_are_listed():
    # one term per section of the notes, in the notes' own Chinese
    for term in ("兼容性分数", "自回归模型", "显存", "尾数", "分组查询注意力", "分片",
                 "灾难性遗忘", "剪枝", "蒸馏", "私有数据"):
        assert term in _terms()


def test_glossary_links_resolve():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", GLOSSARY.read_text(encoding="utf-8"))
    assert links
    for link in links:
        assert (GLOSSARY.parent / link).exists(), link
