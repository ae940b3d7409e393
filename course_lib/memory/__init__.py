"""How much memory a model needs: estimate it by formula, then measure it exactly.

Taught in book/02_memory.md. Sizes are in bytes; GB means 1e9 bytes (decimal), as in the
course notes and the ZeRO paper; GiB means 2**30 bytes, as GPU vendors size their cards.

- ``estimate``: bytes per value, weights, activations (Korthikanti et al. 2022), KV cache,
  training memory (the notes' rule and mixed precision), ZeRO stages, communication volume;
- ``count``: parameters by formula and by walking a module, Llama-style configs;
- ``measure``: exact bytes from tensors, including what autograd saves for backward;
- ``calculator``: the what-fits-where table and ``python -m course_lib.memory``.
"""

from .calculator import NF4_BYTES_PER_PARAM, breakdown_table, fits_table, lora_param_count, main
from .count import (
    LLAMA_CONFIGS,
    LlamaConfig,
    LlamaSkeleton,
    count_params,
    gpt_activation_memory,
    gpt_param_count,
    llama_param_count,
)
from .estimate import (
    GB,
    SEED_RULE,
    GiB,
    activation_memory,
    bytes_per_param,
    communication_volume,
    kv_cache_bytes,
    model_memory,
    training_memory,
    zero_memory,
)
from .measure import (
    SavedTensorMeter,
    gradient_bytes,
    measure_training_step,
    optimizer_state_bytes,
    parameter_bytes,
    tensor_bytes,
    trim_heap,
)

__all__ = [
    "GB", "GiB", "SEED_RULE", "LLAMA_CONFIGS", "NF4_BYTES_PER_PARAM", "LlamaConfig",
    "LlamaSkeleton", "SavedTensorMeter", "activation_memory", "breakdown_table",
    "bytes_per_param", "communication_volume", "count_params", "fits_table",
    "gpt_activation_memory", "gpt_param_count", "gradient_bytes", "kv_cache_bytes",
    "llama_param_count", "lora_param_count", "main", "measure_training_step", "model_memory",
    "optimizer_state_bytes", "parameter_bytes", "tensor_bytes", "training_memory", "trim_heap",
    "zero_memory",
]
