"""One look for every figure in the book, the figures that recur, and each chapter's diagrams.

Call `use_style()` once at the top of a chapter; draw attention maps (and any other matrix a
reader should look at cell by cell) with `heatmap`. The diagrams of structures (the
architecture, data movement, tiles, bit layouts, ...) live in one module per subject:

- `architecture`: chapter 1's pipeline, block and families, and label placement
- `parallel`: chapter 2's who-holds-what under DDP, ZeRO and FSDP
- `numbers`: chapter 3's bit layouts and quantization grids
- `tiles`: chapter 4's tiled attention
- `finetuning`: chapter 5's trained tokens and LoRA matrices
- `sparsity`: chapter 6's lazy column blocks
- `flow`: chapter 7's RAG pipeline and agent loop

Every name is importable from `course_lib.plots` directly.
"""

from course_lib.plots import architecture, finetuning, flow, numbers, parallel, sparsity, tiles
from course_lib.plots.architecture import *  # noqa: F403
from course_lib.plots.base import DIVERGING_CMAP, PALETTE, SEQUENTIAL_CMAP, heatmap, use_style
from course_lib.plots.finetuning import *  # noqa: F403
from course_lib.plots.flow import *  # noqa: F403
from course_lib.plots.numbers import *  # noqa: F403
from course_lib.plots.parallel import *  # noqa: F403
from course_lib.plots.sparsity import *  # noqa: F403
from course_lib.plots.tiles import *  # noqa: F403

__all__ = ["PALETTE", "SEQUENTIAL_CMAP", "DIVERGING_CMAP", "use_style", "heatmap"]
for _module in (architecture, parallel, numbers, tiles, finetuning, sparsity, flow):
    __all__ += _module.__all__
del _module
