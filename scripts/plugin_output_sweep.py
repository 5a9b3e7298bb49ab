"""Does anything but fxgrad's own output reach the terminal? ``fxgrad scan`` (each format, and
``--all``) and ``fxgrad info`` of every plugin ``fxgrad scan --all`` lists, each in a fresh
process as a user runs them, with what they print checked line by line.

    .venv/bin/python scripts/plugin_output_sweep.py [--jobs 2] [--limit N]

fxgrad's own output: ``scan``'s table (or JSON) and nothing on stderr; ``info``'s header, table and
``N parameter(s)`` last, or one ``fxgrad: error: ...`` line on stderr for a plugin it cannot host.
Anything else (a plugin's chatter on either stream, text glued to a line) is reported with the
command that printed it. Exit status 0 when every command was quiet.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

FXGRAD = Path(sys.executable).with_name("fxgrad")
PARAMETERS_LINE = re.compile(r"^\d+ parameter\(s\)$")


def run(command: List[str]) -> Tuple[int, str, str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def info_noise(identifier: str) -> Optional[str]:
    """What ``fxgrad info IDENTIFIER`` printed beyond its own output, or None."""
    code, out, err = run([str(FXGRAD), "info", identifier])
    lines = out.splitlines()
    if code == 0:
        if err.strip():
            return f"stderr: {err.strip()[:300]!r}"
        if not lines or not PARAMETERS_LINE.match(lines[-1]):
            return f"last line: {lines[-1][:300] if lines else '(none)'!r}"
        return None
    errors = err.strip().splitlines()
    if len(errors) == 1 and errors[0].startswith("fxgrad: error: ") and not out.strip():
        return None
    return f"exit {code}: stdout {out.strip()[-200:]!r}, stderr {err.strip()[:300]!r}"


def scan_noise(arguments: List[str]) -> Optional[str]:
    """What ``fxgrad scan ARGUMENTS`` printed beyond its own output, or None."""
    code, out, err = run([str(FXGRAD), "scan", *arguments])
    if code != 0 or err.strip():
        return f"exit {code}, stderr {err.strip()[:300]!r}"
    if "--json" in arguments:
        try:
            json.loads(out)
        except ValueError as error:
            return f"stdout is not the JSON alone: {error}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, help="only the first N plugins")
    args = parser.parse_args()
    started = time.monotonic()
    scans = [["--all"], ["--all", "--json"]] + [["--format", f] for f in ("lv2", "vst3", "vst2", "ladspa")]
    noisy = [(f"fxgrad scan {' '.join(a)}", scan_noise(a)) for a in scans]
    identifiers = [p["identifier"] for p in json.loads(run([str(FXGRAD), "scan", "--all", "--json"])[1])]
    identifiers = identifiers[: args.limit] if args.limit else identifiers
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        noisy += [(f"fxgrad info {i!r}", n) for i, n in zip(identifiers, pool.map(info_noise, identifiers))]
    found = [(command, noise) for command, noise in noisy if noise]
    for command, noise in found:
        print(f"{command}: {noise}")
    print(
        f"{len(scans)} scans and {len(identifiers)} `fxgrad info` runs in {time.monotonic() - started:.0f} s: "
        f"{len(found)} printed more than fxgrad's own output"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
