"""course_lib.measure: the peak-memory replay checked on allocations of known size, timing,
the roofline's two roofs, and a clear error for every bad argument."""

import os

import pytest
import torch

from course_lib import measure

MiB = 2**20


def test_peak_memory_counts_what_is_alive_at_once():
    def allocate_free_allocate():
        a = torch.empty(MiB, dtype=torch.uint8)  # 1 MiB
        del a
        b = torch.empty(2 * MiB, dtype=torch.uint8)  # 2 MiB, after the first is freed
        c = torch.empty(MiB, dtype=torch.uint8)  # alive together with b: 3 MiB
        return b, c

    (b, c), peak = measure.measure_peak_memory(allocate_free_allocate)
    assert b.numel() == 2 * MiB
    assert 3 * MiB <= peak < 3 * MiB + 64 * 1024  # allocator rounding, never 4 MiB


def test_peak_memory_ignores_what_existed_before():
    before = torch.ones(2 * MiB)  # 8 MiB of fp32 made before the call
    _, peak = measure.measure_peak_memory(lambda t: t.sum(), before)
    assert peak < MiB


def test_peak_memory_passes_errors_through_and_restores_stderr():
    def boom():
        raise RuntimeError("from inside")

    with pytest.raises(RuntimeError, match="from inside"):
        measure.measure_peak_memory(boom)
    os.fstat(2)  # file descriptor 2 is open again after the profiler's silencing


def test_benchmark_and_machine_measurements_are_positive():
    calls = []
    seconds = measure.benchmark(calls.append, 1, repeats=3, warmup=2)
    assert seconds > 0 and len(calls) == 5
    assert measure.benchmark(torch.ones, 10, repeats=1, warmup=0) > 0
    assert measure.measure_matmul_flops(n=64, repeats=2) > 1e6
    assert measure.measure_matmul_flops(torch.bfloat16, n=64, repeats=1) > 1e6
    assert measure.measure_copy_bandwidth(nbytes=2**20, repeats=2) > 1e6


def test_cpu_cache_bytes():
    assert measure.cpu_cache_bytes(2) > 0
    assert measure.cpu_cache_bytes(level=99, default=12345) == 12345


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: measure.measure_peak_memory("not a function"), TypeError, "fn must be callable"),
        (lambda: measure.benchmark(None), TypeError, "fn must be callable"),
        (lambda: measure.benchmark(torch.ones, 3, repeats=0), ValueError, "repeats"),
        (lambda: measure.benchmark(torch.ones, 3, repeats=2.5), TypeError, "repeats"),
        (lambda: measure.benchmark(torch.ones, 3, repeats=True), TypeError, "repeats"),
        (lambda: measure.benchmark(torch.ones, 3, warmup=-1), ValueError, "warmup"),
        (lambda: measure.benchmark(torch.ones, 3, warmup=None), TypeError, "warmup"),
        (lambda: measure.measure_matmul_flops(torch.int32), TypeError, "dtype"),
        (lambda: measure.measure_matmul_flops("float32"), TypeError, "dtype"),
        (lambda: measure.measure_matmul_flops(n=0), ValueError, "n must"),
        (lambda: measure.measure_matmul_flops(n=1e3), TypeError, "n must"),
        (lambda: measure.measure_copy_bandwidth(nbytes=2), ValueError, "nbytes"),
        (lambda: measure.measure_copy_bandwidth(nbytes=1e308), TypeError, "nbytes"),
        (lambda: measure.measure_copy_bandwidth(repeats=0), ValueError, "repeats"),
        (lambda: measure.cpu_cache_bytes(0), ValueError, "level"),
        (lambda: measure.cpu_cache_bytes("2"), TypeError, "level"),
        (lambda: measure.cpu_cache_bytes(99, default=-1), ValueError, "default"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
