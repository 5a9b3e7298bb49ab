#!/usr/bin/env python3
"""Loading and freeing plugins, many times over: cycles per second and whether the process lives.

Each cycle loads a plugin, renders one block, sets every parameter and frees the instance while
those values are still on their way to the plugin. JUCE's VST3 instance flushes such values into
its edit controller from a 60 Hz timer on the message thread; an instance freed on another thread
used to free that timer while its callback could run, which crashed the process about once in
30,000 VST3 cycles (a segfault in a thread Python does not know). fxgrad now frees every instance
on the message thread. Each plugin churns in a fresh child process, so a crash is reported by the
signal that ended it instead of ending the bench.

    .venv/bin/python bench/instance_churn.py                       # 30,000 cycles per plugin (minutes)
    .venv/bin/python bench/instance_churn.py --cycles 2000         # a quick look
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

# One build of one plugin in each format the host loads through a different JUCE class.
PLUGINS = {
    "VST3": "/usr/lib/vst3/ZamEQ2.vst3",
    "VST2": "/usr/lib/vst/ZamEQ2-vst.so",
    "LV2": "urn:zamaudio:ZamEQ2",
}

CHILD = """
import sys, time
import numpy as np
import fxgrad
identifier, cycles = sys.argv[1], int(sys.argv[2])
block = np.zeros((1, 256), np.float32)
start = time.perf_counter()
for i in range(cycles):
    plugin = fxgrad.load(identifier, channels=1)
    plugin.process(block)
    for index in range(len(plugin.parameters)):
        plugin.set(index, 0.3 + 0.1 * (i % 3), normalized=True)
    del plugin
print(time.perf_counter() - start)
"""


def churn(identifier: str, cycles: int) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CHILD, identifier, str(cycles)], capture_output=True, text=True)
    if run.returncode == 0:
        return float(run.stdout.split()[-1]), "lived"
    elapsed = time.perf_counter() - started
    if run.returncode < 0:
        return elapsed, f"killed by {signal.Signals(-run.returncode).name}"
    last = [line for line in run.stderr.splitlines() if line.strip() and "DPF warning" not in line][-1:]
    return elapsed, f"exit {run.returncode}: {''.join(last)}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=30000, help="load/set/free cycles per plugin")
    p.add_argument("--formats", default=",".join(PLUGINS), help="comma list of " + ", ".join(PLUGINS))
    args = p.parse_args(argv)
    print(f"{'format':7} {'plugin':32} {'cycles':>7} {'ms/cycle':>9}  process")
    failures = 0
    for name in args.formats.split(","):
        identifier = PLUGINS[name]
        if not identifier.startswith("urn:") and not Path(identifier).exists():
            print(f"{name:7} {identifier:32} {'':>7} {'':>9}  not installed")
            continue
        seconds, outcome = churn(identifier, args.cycles)
        failures += outcome != "lived"
        print(f"{name:7} {identifier:32} {args.cycles:>7} {1000 * seconds / args.cycles:>9.3f}  {outcome}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
