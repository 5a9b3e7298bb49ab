"""``python -m fxgrad.cli ...``: the fxgrad command, as ``python -m fxgrad``."""

import sys

from . import main

sys.exit(main())
