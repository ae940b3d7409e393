"""Clear the book's execution cache when course_lib's content changes.

Jupyter Book's cache re-executes a chapter only when the chapter's own cells change, so after
an edit to course_lib the site would keep showing numbers computed by the old code. This
script hashes the package (its code and shipped files) and, when the hash differs from the
one stored in the build folder, deletes the execution cache and Sphinx's saved environment
(else Sphinx would not even re-read an unchanged chapter), so every chapter re-runs.

    python tools/book_cache.py [--package course_lib] [--build _build]

`make book` runs it before building the two editions (tools/build_book.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

STAMP = "course_lib.sha256"


def package_hash(package: Path) -> str:
    """sha256 over the relative path and bytes of every file the chapters' results depend on."""
    digest = hashlib.sha256()
    files = sorted(p for p in package.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix in {".py", ".json", ".safetensors", ".txt", ".md"})
    for path in files:
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


# executed outputs; Sphinx's record of what it read, for each edition (tools/build_book.py)
CACHES = (".jupyter_cache", ".doctrees", ".doctrees-zh", ".doctrees-gettext")


def sync(package: Path, build: Path) -> bool:
    """Delete the caches in ``build`` if the package changed since the stamp there; return True
    if anything was cleared."""
    current = package_hash(package)
    stamp = build / STAMP
    previous = stamp.read_text().strip() if stamp.exists() else None
    cleared = False
    if previous != current:
        for name in CACHES:
            if (build / name).exists():
                shutil.rmtree(build / name)
                cleared = True
    stamp.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=stamp.parent, prefix=".stamp-")
    with os.fdopen(fd, "w") as f:
        f.write(current + "\n")
    os.replace(tmp, stamp)
    return cleared


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=Path("course_lib"))
    parser.add_argument("--build", type=Path, default=Path("_build"))
    args = parser.parse_args(argv)
    if not args.package.is_dir():
        print(f"no package folder at {args.package}", file=sys.stderr)
        return 2
    if sync(args.package, args.build):
        print(f"{args.package} changed since the last build: cleared the execution cache, "
              "every chapter will re-run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
