"""Chapter 7b exercises: agents and their tools."""

from __future__ import annotations

from course_lib.exercises import Exercise, register

register(Exercise(
    id="ch7b.no_eval", title="Explain: why the calculator parses instead of eval",
    kind="choice", section="07b_agents.md",
    prompt=("An agent's calculator receives text written by a model, which may have read a "
            "poisoned document. Why does it parse the text into an AST and walk only number and "
            "operator nodes instead of calling eval?"),
    choices={
        "a": "eval is slower.",
        "b": "eval runs any Python the text contains: an injected '__import__(\"os\")...' "
             "would execute; walking an allow-list of nodes can only do arithmetic.",
        "c": "eval cannot compute powers.",
        "d": "The AST gives more precise floating-point results.",
    },
    explanations={
        "a": "Speed is not the concern.",
        "b": "Untrusted text must never become code.",
        "c": "It can; that is not the problem.",
        "d": "The arithmetic is the same floating point either way.",
    },
    hint="Who wrote the string the tool receives?",
    reference="b",
))
