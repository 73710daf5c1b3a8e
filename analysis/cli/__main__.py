"""``python -m analysis.cli``: the same as ``scaling-analyze``."""

import sys

from analysis.cli import main

sys.exit(main())
