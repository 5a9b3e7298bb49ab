"""``python -m fxgrad ...``: the fxgrad command (see :mod:`fxgrad.cli`)."""

import sys

from .cli import main

sys.exit(main())
