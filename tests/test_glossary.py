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


# a term of the notes -> the chapter whose text defines it, and the word it sets in bold there
DEFINED_IN = {
    "RLHF": ("05b_alignment.md", "reward model"),
    "蒸馏": ("06b_inference.md", "distillation"),
    "Agent": ("07b_agents.md", "agent"),
    "GPTQ": ("06_inference.md", "GPTQ"),
    "SparseGPT": ("06_inference.md", "SparseGPT"),
    "QLoRA": ("05_finetuning.md", "QLoRA"),
    "Prompt Tuning": ("05_finetuning.md", "prompt tuning"),
    "灾难性遗忘": ("05_finetuning.md", "catastrophic forgetting"),
    "量化": ("03_quantization.md", "quantization"),
    "chunk": ("07_rag_agents.md", "chunk"),
    "自回归模型": ("01_transformer.md", "autoregressive"),
    "生成式": ("01_transformer.md", "autoregressive"),
}


def _rows() -> dict[str, str]:
    """Each term of the first column -> the chapter file its row links to."""
    rows = {}
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("| The notes"):
            link = re.search(r"\]\(([^)#]+)", line.split("|")[4])
            for term in line.split("|")[1].split("/"):
                rows[term.strip()] = link.group(1) if link else None
    return rows


def test_terms_link_to_the_chapter_that_defines_them():
    rows = _rows()
    for term, (chapter, word) in DEFINED_IN.items():
        linked = rows.get(term)
        assert linked == chapter, f"glossary: {term} links to {linked}, not to {chapter}"
        text = (REPO / "book" / chapter).read_text(encoding="utf-8")
        bold = re.findall(r"\*\*([^*]+)\*\*", text)
        assert any(word.lower() in b.lower() for b in bold), f"{chapter} does not define {word}"
