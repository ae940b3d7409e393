"""The shipped checkpoints: ``load_pretrained(name)`` checks a checkpoint's record against its
files before it builds anything, then loads it offline.

Taught in book/01_transformer.md. The code lives in ``course_lib.models`` (it builds the
models' classes, and ``models.load_pretrained`` is the name most chapters use); this module
names the same objects, so ``from course_lib.pretrained import load_pretrained`` works too.
"""

from __future__ import annotations

from .models import PRETRAINED, load_pretrained, pretrained_files

__all__ = ["PRETRAINED", "load_pretrained", "pretrained_files"]
