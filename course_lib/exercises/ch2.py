"""Chapter 2 exercises: Adam's bytes, the KV cache, ZeRO stages, what DDP holds."""

from __future__ import annotations

from course_lib.exercises import Case, Exercise, register
from course_lib.exercises._util import need_int

register(Exercise(
    id="ch2.adam_bytes_13b", title="Predict: Adam's states for a 13B model", kind="number",
    section="02_memory.md",
    prompt=("A 13-billion-parameter model trains with Adam in fp32. How many bytes do Adam's "
            "optimizer states take (not the weights, not the gradients)? Within 1%."),
    hint="Adam keeps two fp32 numbers per parameter: the running mean and the running variance.",
    reference=13e9 * 2 * 4, tolerance=0.01,
))


def kv_cache_bytes(batch: int, seq: int, n_layers: int, n_kv_heads: int, head_dim: int,
                   bytes_per_value: int = 2) -> int:
    """Bytes of the keys and values a decoder keeps for every layer, head and position."""
    for name, value in [("batch", batch), ("seq", seq), ("n_layers", n_layers),
                        ("n_kv_heads", n_kv_heads), ("head_dim", head_dim),
                        ("bytes_per_value", bytes_per_value)]:
        need_int(name, value, low=1)
    return 2 * batch * seq * n_layers * n_kv_heads * head_dim * bytes_per_value


register(Exercise(
    id="ch2.kv_cache_bytes", title="The KV cache's size", kind="function",
    section="02_memory.md",
    prompt=("Write kv_cache_bytes(batch, seq, n_layers, n_kv_heads, head_dim, "
            "bytes_per_value=2) -> int: the bytes a decoder's KV cache takes. Raise ValueError "
            "for sizes below 1 and TypeError for non-integers."),
    hint="Every layer stores a key and a value vector of head_dim numbers per KV head and token.",
    reference=kv_cache_bytes,
    cases=lambda: [
        Case((1, 1, 1, 1, 1)),
        Case((1, 4096, 32, 32, 128), note="Llama-2-7B, fp16"),
        Case((8, 2048, 80, 8, 128), {"bytes_per_value": 1}, note="GQA, 8-bit cache"),
        Case((3, 100, 4, 4, 32), {"bytes_per_value": 4}, note="tiny-gpt in fp32"),
    ],
    bad_cases=lambda: [Case((0, 10, 1, 1, 1), note="batch 0"),
                       Case((1, -5, 1, 1, 1), note="negative seq"),
                       Case((1, 10, 1.5, 1, 1), note="fractional n_layers")],
))

register(Exercise(
    id="ch2.kv_llama7b", title="Predict: Llama-2-7B's KV cache at 4,096 tokens", kind="number",
    section="02_memory.md",
    prompt=("Llama-2-7B has 32 layers, 32 heads of dimension 128 (no GQA). How many bytes is "
            "its fp16 KV cache for one sequence of 4,096 tokens? Within 1%."),
    hint="2 (K and V) x tokens x layers x heads x head_dim x 2 bytes.",
    reference=2 * 4096 * 32 * 32 * 128 * 2, tolerance=0.01,
))

register(Exercise(
    id="ch2.zero_stage", title="Explain: which ZeRO stage shards the weights", kind="choice",
    section="02_memory.md",
    prompt="Which ZeRO stage is the first to split the model's parameters across the devices?",
    choices={"a": "Stage 1", "b": "Stage 2", "c": "Stage 3", "d": "None: ZeRO never does"},
    explanations={
        "a": "Stage 1 shards only the optimizer states.",
        "b": "Stage 2 shards optimizer states and gradients; every device still has all weights.",
        "c": "Stage 3 shards the parameters too, and gathers each layer's just before use.",
        "d": "Stage 3 does, which is what FSDP implements.",
    },
    hint="The stages add what they shard one at a time: optimizer states, gradients, weights.",
    reference="c",
))

register(Exercise(
    id="ch2.ddp_memory", title="Explain: what DDP does to per-device memory", kind="choice",
    section="02_memory.md",
    prompt="Two GPUs train one model with DDP. Compared with training on one GPU, each GPU holds:",
    choices={
        "a": "half the optimizer states",
        "b": "the same weights, gradients and optimizer states (a full replica)",
        "c": "half the weights",
        "d": "nothing but activations",
    },
    explanations={
        "a": "That is ZeRO stage 1 or FSDP, not DDP.",
        "b": "DDP replicates everything and splits the batch; only activations per device shrink.",
        "c": "That is FSDP / ZeRO stage 3.",
        "d": "Every DDP process runs the whole model.",
    },
    hint="DDP splits the data, not the model.",
    reference="b",
))
