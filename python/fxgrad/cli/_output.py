"""How the commands print: numbers to six significant digits, and the plugin libraries' own
stderr chatter kept off the terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


def fmt_number(value: float) -> str:
    return f"{value:.6g}"


@contextlib.contextmanager
def native_chatter(show: bool):
    """Plugin libraries (lilv, LADSPA modules, JUCE) write diagnostics straight to the stderr
    file descriptor while scanning/loading; hide them unless asked (--verbose)."""
    if show:
        yield
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
