"""Argument checks shared by the host and the layer, and what this machine can give a rack:
cores, the threads the OS still allows, the memory available (Linux ``/proc`` and cgroups;
elsewhere the machine-derived bounds are not checked)."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Optional, Tuple

INT64_MAX = 2**63 - 1


def integer(value: Any, name: str) -> int:
    """``value`` as an int: a Python or NumPy integer, or a float with no fractional part.

    Raises ``TypeError`` for a bool, a fractional number or a non-number (``block_size=256.7``
    must not become 256), ``ValueError`` for an integer beyond 64 bits."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral):
        number = float(value)
        if not (math.isfinite(number) and number.is_integer()):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        value = number
    result = int(value)
    if abs(result) > INT64_MAX:
        raise ValueError(f"{name}={result} is out of range")
    return result


def cores() -> int:
    """CPU cores of this machine."""
    return os.cpu_count() or 1


def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _cgroup_files(v2_name: str, v1_controller: str, v1_name: str) -> list:
    """The cgroup files of this process named ``v2_name`` (unified) or ``v1_name`` under the
    ``v1_controller`` hierarchy (the cgroup itself first, then its parents)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, relative = line.split(":", 2)
        if controllers == "":
            root, name = Path("/sys/fs/cgroup"), v2_name
        elif v1_controller in controllers.split(","):
            root, name = Path("/sys/fs/cgroup") / v1_controller, v1_name
        else:
            continue
        folder = root / relative.lstrip("/")
        while True:
            found.append(folder / name)
            if folder == root:
                break
            folder = folder.parent
    return found


def thread_headroom() -> Tuple[Optional[int], str]:
    """How many more threads the OS lets this process start (the tightest of the kernel's
    threads-max, RLIMIT_NPROC and the cgroup's pids.max, less the threads running now), and
    which limit that is; ``(None, "")`` where it cannot be read."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        return None, ""
    limits = []
    kernel = _read_int(Path("/proc/sys/kernel/threads-max"))
    if kernel is not None:
        limits.append((kernel - running, f"kernel.threads-max {kernel}, {running} threads running"))
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        if soft != resource.RLIM_INFINITY:
            limits.append((soft - running, f"RLIMIT_NPROC {soft}, {running} threads running"))
    except (ImportError, OSError, ValueError):
        pass
    for limit_file in _cgroup_files("pids.max", "pids", "pids.max"):
        limit = _read_int(limit_file)
        current = _read_int(limit_file.with_name("pids.current"))
        if limit is not None and current is not None:
            limits.append((limit - current, f"cgroup pids.max {limit}, {current} in use"))
    if not limits:
        return None, ""
    return min(limits)


def available_memory() -> Tuple[Optional[int], str]:
    """Bytes of memory this process can still get (MemAvailable, or less where a cgroup limit
    is tighter) and where the figure comes from; ``(None, "")`` where it cannot be read."""
    figures = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                figures.append((int(line.split()[1]) * 1024, "MemAvailable"))
    except (OSError, ValueError):
        pass
    for limit_file in _cgroup_files("memory.max", "memory", "memory.limit_in_bytes"):
        limit = _read_int(limit_file)
        usage_name = "memory.current" if limit_file.name == "memory.max" else "memory.usage_in_bytes"
        usage = _read_int(limit_file.with_name(usage_name))
        if limit is not None and usage is not None and limit < 2**60:
            figures.append((max(limit - usage, 0), f"cgroup {limit_file.name} {format_bytes(limit)}"))
    if not figures:
        return None, ""
    return min(figures)


def resident_bytes() -> Optional[int]:
    """This process's resident memory."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def format_bytes(count: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    k = 0
    while count >= 1024 and k < len(units) - 1:
        count /= 1024
        k += 1
    return f"{count:.0f} B" if k == 0 else f"{count:.1f} {units[k]}"
