"""Chapter 7's fine-tuned ``tiny-gpt``: a reader that answers from retrieved passages and cites
one, and a ReAct policy that calls a calculator and a search tool, or answers without them.

- ``traces``: the prompt formats and the generated training examples (reading examples,
  tool-use traces, copy drills), and the policy's search tool;
- ``model``: the longer context, greedy decoding, training, the checkpoints and
  ``ModelPolicy``;
- ``measure``: what chapter 7b measures on the policy: its tool-use skills, where its heads
  look when it copies, and how a transcript fills its context;
- ``__main__``: ``python -m course_lib.policy --out course_lib/weights`` trains both runs.

Taught in book/07_rag_agents.md and book/07b_agents.md.
"""

from .measure import (
    CONTEXT_PARTS,
    ToolUse,
    attention_maps,
    context_segments,
    induction_scores,
    measure_tool_use,
    scripted_policy,
)
from .model import (
    BATCH,
    BLOCK,
    RUNS,
    ModelPolicy,
    extend_positions,
    generate_answer,
    greedy_starts_with,
    greedy_written,
    load_policy,
    save_policy,
    train_policy,
)
from .traces import (
    CHAPTER_TOWN_SEED,
    CHUNKING,
    COPY_DRILLS,
    EVAL_ARITHMETIC_SEEDS,
    READ_PASSAGES,
    THOUGHT_CALC,
    THOUGHT_GUESS,
    THOUGHT_READ,
    THOUGHT_SEARCH,
    TRAIN_SEEDS,
    agent_prompt,
    arithmetic_trace,
    copy_drills,
    gold_position_shares,
    no_tools_example,
    parse_cited,
    propositions,
    read_prompt,
    reading_example,
    retrieved_propositions,
    search_tool,
    town_passages,
    town_pool,
    town_trace,
    training_examples,
)

__all__ = ["RUNS", "BLOCK", "BATCH", "CHUNKING", "COPY_DRILLS", "CHAPTER_TOWN_SEED",
           "TRAIN_SEEDS", "EVAL_ARITHMETIC_SEEDS", "READ_PASSAGES", "THOUGHT_CALC",
           "THOUGHT_SEARCH", "THOUGHT_READ", "THOUGHT_GUESS", "extend_positions", "read_prompt",
           "agent_prompt", "parse_cited", "generate_answer", "greedy_starts_with",
           "greedy_written", "propositions", "town_passages", "town_pool", "reading_example",
           "retrieved_propositions", "search_tool", "town_trace", "arithmetic_trace",
           "no_tools_example", "copy_drills", "gold_position_shares", "training_examples",
           "train_policy", "save_policy", "load_policy", "ModelPolicy", "ToolUse",
           "measure_tool_use", "scripted_policy", "attention_maps", "induction_scores",
           "context_segments", "CONTEXT_PARTS", "main"]


def __getattr__(name):
    """``main`` lives in ``__main__`` (``python -m course_lib.policy``) and is imported only
    when asked for, so that running the package does not import that module twice."""
    if name == "main":
        from .__main__ import main
        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
