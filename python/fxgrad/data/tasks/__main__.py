"""``python -m fxgrad.data.tasks build TASK OUT_DIR ...``: build a task's data set (as ``fxgrad data
build``; see :func:`fxgrad.data.tasks.main`)."""

import sys

from . import main

sys.exit(main())
