"""``python -m course_lib.memory``: the memory calculator."""

import sys

from .calculator import main

sys.exit(main())
