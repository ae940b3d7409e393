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


# Pages whose exercises are stated in Markdown (readable in JupyterLab before running
# anything), at least half of them transfer problems.
MARKDOWN_EXERCISE_PAGES = {"01_transformer.md": 1, "02_memory.md": 2,
                           "03_quantization.md": 3, "04_attention.md": 4,
                           "05_finetuning.md": 5, "05b_alignment.md": "5b",
                           "06_inference.md": 6, "06b_inference.md": "6b",
                           "07_rag_agents.md": 7, "07b_agents.md": "7b"}


def _page_exercises(name):
    from course_lib.exercises import get, list_exercises
    ids = list_exercises(MARKDOWN_EXERCISE_PAGES[name])
    return ids, [get(i) for i in ids]


def test_markdown_exercises_are_numbered_stated_and_checked_in_order():
    for name in MARKDOWN_EXERCISE_PAGES:
        text = (BOOK / name).read_text(encoding="utf-8")
        ids, exs = _page_exercises(name)
        assert "## Exercises" in text, name
        tail = text[text.index("## Exercises"):]
        heads = re.findall(r"^### Exercise (\d+): (.+)$", tail, flags=re.M)
        assert [int(n) for n, _ in heads] == list(range(1, len(ids) + 1)), (name, heads)
        checked = re.findall(r'check\("([a-z0-9]+\.[a-z0-9_]+)"', tail)
        assert list(dict.fromkeys(checked)) == ids, (name, checked, ids)
        assert "card(" not in tail, f"{name}: statements are Markdown, not card() output"
        for ex in exs:      # the worked answer is revealed on demand, never printed in view
            assert f'solution("{ex.id}")' in tail, (name, ex.id)
            assert ex.why, f"{ex.id}: solution() shows the reasoning (Exercise.why)"


def test_at_least_half_of_each_pages_exercises_are_transfer_problems():
    for name in MARKDOWN_EXERCISE_PAGES:
        ids, exs = _page_exercises(name)
        assert 2 * sum(ex.transfer for ex in exs) >= len(exs), (name, ids)


def test_no_prose_line_starts_a_list_by_accident():
    # A paragraph line (or inline maths wrapped onto a new line) that starts with "+ ", "- " or
    # "* " begins a bullet list in Markdown: "... 4 (gradients)\n+ 8 (activations)" rendered
    # as a list, and a wrapped "$... \n+ \beta ...$" as broken maths.
    bad = []
    for page in PAGES:
        in_code = in_math = False
        prev = ""
        for n, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
            if line.startswith(("```", "~~~", ":::")):
                in_code = line.startswith(("```", "~~~")) and not in_code
                prev = ""
                continue
            stripped = line.strip()
            if not in_code and stripped.startswith("$$"):
                in_math = not in_math if not (len(stripped) > 2 and stripped.endswith("$$")) \
                    else in_math
                prev = ""
                continue
            if in_code or in_math:
                continue
            if re.match(r"[-+*] ", line) and prev.strip() and prev[0] not in " :|" and \
                    not re.match(r"([-+*]|\d+\.) ", prev):
                bad.append(f"{page.name}:{n}: {line[:60]}")
            prev = line
    assert not bad, bad
