"""Tools described by a JSON schema, safe tools, and a ReAct loop that survives bad calls.

A tool is a function with a name, a description and an input schema (``{"name",
"description", "input_schema"}``, the shape of Anthropic's tool definitions; OpenAI's function
calling nests the same three under ``{"type": "function", "function": {..., "parameters"}}``).
The agent loop asks a policy for the next step, runs the tool it names in a worker process
under a time and a memory limit, and feeds the result (or the error) back as an observation.

- ``tools``: ``Tool``, the calculator and the unit converter (book/07b_agents.md, sections
  1-2);
- ``sandbox``: the worker process and its limits (section 3);
- ``react``: ``parse_step``, ``ReActAgent`` and ``render_transcript`` (section 3), and
  ``drop_transcript_lines``, a defence against forged steps in tool output (section 5).

Taught in book/07b_agents.md (part 2 of chapter 7).
"""

from .react import (
                    MAX_ACTION_DEPTH,
                    ReActAgent,
                    Step,
                    drop_transcript_lines,
                    parse_step,
                    render_transcript,
)
from .sandbox import START_TIMEOUT_S
from .tools import (
                    CALCULATOR,
                    MAX_BITS,
                    MAX_CHARS,
                    MAX_DEPTH,
                    MAX_NDIGITS,
                    UNITS,
                    Tool,
                    calculator,
                    convert_units,
)

__all__ = ["Tool", "calculator", "convert_units", "CALCULATOR", "UNITS", "ReActAgent", "Step",
           "parse_step", "render_transcript", "drop_transcript_lines", "MAX_CHARS", "MAX_DEPTH",
           "MAX_BITS", "MAX_NDIGITS", "MAX_ACTION_DEPTH", "START_TIMEOUT_S"]
