"""How the commands print: numbers to six significant digits, and the plugin libraries' own
stderr chatter kept off the terminal."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile


def fmt_number(value: float) -> str:
    return f"{value:.6g}"


@contextlib.contextmanager
def native_chatter(show: bool):
    """Plugin libraries (lilv, LADSPA modules, JUCE) write diagnostics straight to the stderr
    file descriptor while processing; hide them unless asked (--verbose), which also shows what
    the host captured while plugins were scanned, created or freed (the ``fxgrad.plugins`` log)."""
    if show:
        from ..host.plugins import PLUGIN_OUTPUT as logger

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("plugin output: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
