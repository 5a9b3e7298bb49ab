"""Ctrl-C and SIGTERM during training: the first asks for a checkpoint and a clean stop, the second stops at once."""

from __future__ import annotations

import signal
import threading
from typing import Callable


def install_stop_handlers(
    request_stop: Callable[[str], None],
    stop_requested: Callable[[], bool],
    note: Callable[[str], None],
    interrupt: Callable[[], None] = lambda: None,
) -> Callable[[], None]:
    """Handlers for SIGINT and SIGTERM that call ``request_stop(reason)`` (the loop finishes its
    step and writes a checkpoint) and ``interrupt()`` (the plugin layers give up on a call still
    waiting 0.3 s later: a step stuck on a hung plugin is abandoned, not waited for);
    a second signal raises KeyboardInterrupt at once. Returns the function that puts the previous
    handlers back. Only the main thread can install handlers: elsewhere nothing is installed.

    The handlers run while the plugin layers wait on their worker processes too (the native
    wait runs this process's signal handlers), so a stop never waits for a plugin's deadline."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)

    def handler(signum, frame):
        if stop_requested():  # second time: abort now
            restore()
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        request_stop(f"{name} received")
        interrupt()
        note(
            f"\n{name}: finishing this step and writing a checkpoint (press Ctrl-C again to stop at "
            "once: the checkpoint then holds the last completed step)"
        )

    for number in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[number] = signal.signal(number, handler)
        except (ValueError, OSError):
            pass  # not settable here (e.g. an embedded interpreter): Ctrl-C raises as usual
    return restore
