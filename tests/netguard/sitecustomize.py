"""Put the course's network guard into every Python process started by the tests.

The root conftest.py prepends this folder to PYTHONPATH, so notebook kernels and any
subprocess a test starts import this file at startup (Python's `site` module imports
`sitecustomize` if it can find one) and run with non-loopback connections blocked.
"""

import importlib.machinery
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _here)
try:
    import course_netguard

    course_netguard.install()
finally:
    sys.path.remove(_here)


def _chain_next_sitecustomize() -> None:
    """Shadowing another sitecustomize (a distro's, a venv's) would silently drop it: run it."""
    others = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


_chain_next_sitecustomize()
