"""Markup rules that keep the rendered pages honest, checked on the chapter sources."""

import re
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1] / "book"
PAGES = sorted(BOOK.glob("*.md"))


def test_no_glue_text_without_a_format():
    # {glue:text} runs ast.literal_eval on the glued text: "1,708" renders as the tuple
    # "(1, 708)" and "+4.8" loses its sign. {glue} shows the text glue_value formatted.
    bad = [f"{p.name}: {m.group(0)}" for p in PAGES
           for m in re.finditer(r"\{glue:text\}`[^`:]+`", p.read_text(encoding="utf-8"))]
    assert not bad, bad


def test_exercise_stubs_show_no_output_on_the_site():
    # a stub's check prints "not implemented yet": fine in JupyterLab, noise on the site
    for page in PAGES:
        for cell in re.findall(r"```\{code-cell\} ipython3\n(.*?)```", page.read_text(
                encoding="utf-8"), flags=re.S):
            if 'raise NotImplementedError("your code here")' in cell or \
                    cell.startswith("my_answer = None"):
                assert cell.startswith(":tags: [remove-output]"), (page.name, cell[:80])
