"""One look for every figure in the book, the figures that recur, and each chapter's diagrams.

Call `use_style()` once at the top of a chapter; draw attention maps (and any other matrix a
reader should look at cell by cell) with `heatmap`. The diagrams of structures (the
architecture, data movement, tiles, bit layouts, ...) live in one module per subject:

- `architecture`: chapter 1's pipeline, block and families, and label placement
- `transformer_diagrams`: chapter 1's Q/K/V flow, multi-head split, one-token shift
- `parallel`: chapter 2's who-holds-what under DDP, ZeRO and FSDP
- `memory_diagrams`: chapter 2's ring all-reduce, mixed-precision flow and step memory
- `numbers`: chapter 3's bit layouts and quantization grids
- `quant_diagrams`: chapter 3's scale groups, double quantization and LLM.int8()'s split
- `tiles`: chapter 4's tiled attention
- `attention_diagrams`: chapter 4's head sharing, online softmax, memory hierarchy, KV cache
- `finetuning`: chapter 5's trained tokens, LoRA matrices, memory bars, QLoRA and adapters
- `alignment`: chapter 5b's RLHF and DPO pipelines, reward head, proxy and gold reward
- `sparsity`: chapter 6's lazy column blocks, the OBS step, RTN against GPTQ
- `compression`: chapter 6b's speculative step, soft targets, structured pruning, Pareto front
- `flow`: chapter 7's RAG pipeline (and any boxes-and-arrows flow)
- `retrieval`: chapter 7's chunk spans, IVF and HNSW, MaxSim
- `agents`: chapter 7b's loop, injection path, context budget, copy head

Every name is importable from `course_lib.plots` directly.
"""

from course_lib.plots import (
    agents,
    alignment,
    architecture,
    attention_diagrams,
    compression,
    finetuning,
    flow,
    memory_diagrams,
    numbers,
    parallel,
    quant_diagrams,
    retrieval,
    sparsity,
    tiles,
    transformer_diagrams,
)
from course_lib.plots.agents import *  # noqa: F403
from course_lib.plots.alignment import *  # noqa: F403
from course_lib.plots.architecture import *  # noqa: F403
from course_lib.plots.attention_diagrams import *  # noqa: F403
from course_lib.plots.base import DIVERGING_CMAP, PALETTE, SEQUENTIAL_CMAP, heatmap, use_style
from course_lib.plots.compression import *  # noqa: F403
from course_lib.plots.finetuning import *  # noqa: F403
from course_lib.plots.flow import *  # noqa: F403
from course_lib.plots.memory_diagrams import *  # noqa: F403
from course_lib.plots.numbers import *  # noqa: F403
from course_lib.plots.parallel import *  # noqa: F403
from course_lib.plots.quant_diagrams import *  # noqa: F403
from course_lib.plots.retrieval import *  # noqa: F403
from course_lib.plots.sparsity import *  # noqa: F403
from course_lib.plots.tiles import *  # noqa: F403
from course_lib.plots.transformer_diagrams import *  # noqa: F403

__all__ = ["PALETTE", "SEQUENTIAL_CMAP", "DIVERGING_CMAP", "use_style", "heatmap"]
for _module in (architecture, transformer_diagrams, parallel, memory_diagrams, numbers,
                quant_diagrams, tiles, attention_diagrams, finetuning, alignment, sparsity,
                compression, flow, retrieval, agents):
    __all__ += _module.__all__
del _module
