"""course_lib: the tested kernels behind the course "All you need about LLMs".

Every chapter in ``book/`` imports from here; every function here has a test in ``tests/``.
"""

from __future__ import annotations

import torch

__version__ = "0.1.0"
__all__ = ["get_device", "__version__"]


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the device a chapter runs on.

    The course runs on the CPU by default so that every reader gets the same numbers.
    ``prefer="cuda"`` asks for a GPU and raises if there is none; ``prefer="auto"`` takes a
    GPU when one exists and falls back to the CPU otherwise.
    """
    if prefer is None or prefer == "cpu":
        return torch.device("cpu")
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer == "cuda" or prefer.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"get_device: prefer={prefer!r} but no CUDA device is available")
        return torch.device(prefer)
    raise ValueError(f"get_device: prefer must be None, 'cpu', 'cuda' or 'auto', got {prefer!r}")
