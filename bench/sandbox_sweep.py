#!/usr/bin/env python3
"""Which installed plugins still work in the sandbox: each plugin `fxgrad scan` lists, rendered
through a one-lane rack with isolation "process" and with isolation "sandbox" (the same
fxgrad-worker, in its namespaces behind its seccomp filter), at its defaults: two frames of
noise forward and one SPSA gradient. A plugin works when the rack gives finite output and no
fault; the sandbox costs it nothing when both work and their outputs are bit-identical.

Plugins are tried in child processes, a batch at a time (a plugin that crashes its batch's
parent is retried alone and counted as failing both ways). Prints one line per plugin that does
not work the same way in both, then the counts per format.

    .venv/bin/python bench/sandbox_sweep.py                  # every installed plugin (about 8 minutes on 2 idle cores)
    .venv/bin/python bench/sandbox_sweep.py --every 10       # every tenth of each format
    .venv/bin/python bench/sandbox_sweep.py --format vst3    # one format
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np, torch, fxgrad
    from fxgrad.torch import PluginLayer

    def attempt(identifier, isolation):
        plugin = fxgrad.load(identifier, sample_rate=44100, block_size=256, channels=2)
        chain = fxgrad.Chain([plugin])
        if chain.num_parameters == 0:
            return "skip", "no parameter to learn"
        layer = PluginLayer(chain, lanes=1, threads=1, isolation=isolation, timeout_s=20, max_faults=0)
        theta = torch.tensor(np.asarray(chain.get_learned(), np.float32))[None].requires_grad_()
        noise = torch.from_numpy(np.random.default_rng(0).uniform(-0.3, 0.3, (1, 2, 1024)).astype(np.float32))
        digest = hashlib.sha256()
        for _ in range(2):
            y = layer(noise, theta)
            digest.update(y.detach().numpy().tobytes())
        y.pow(2).sum().backward()
        faults = layer.take_faults()
        if faults:
            return "fault", f"{faults[0]['kind']} ({faults[0]['detail']})"
        if not torch.isfinite(y).all():
            return "fault", "non-finite output"
        return "ok", digest.hexdigest()

    for identifier in json.loads(sys.argv[1]):
        row = {"identifier": identifier}
        for isolation in ("process", "sandbox"):
            try:
                row[isolation] = attempt(identifier, isolation)
            except Exception as error:
                row[isolation] = ("error", f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
        print(json.dumps(row), flush=True)
    """
)


def run_batch(identifiers, timeout_s):
    """Rows for ``identifiers``; the ones a dead child did not report are retried one by one."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(identifiers)],
            capture_output=True,
            text=True,
            timeout=timeout_s * len(identifiers),
        )
        output, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as expired:
        output, code = (
            (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else (expired.stdout or ""),
            -9,
        )
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    missing = identifiers[len(rows) :]
    if missing and len(identifiers) == 1:
        why = ("error", f"the process loading it died (status {code})")
        return [{"identifier": missing[0], "process": why, "sandbox": why}]
    for identifier in missing:
        rows += run_batch([identifier], timeout_s)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--every", type=int, default=1, help="try every Nth plugin of each format")
    p.add_argument("--format", help="only this format (LV2, VST3, VST2, LADSPA)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per plugin at most")
    p.add_argument("--json", help="write every row to this file")
    args = p.parse_args(argv)

    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "fxgrad", "scan", "--json", "--no-own"], capture_output=True, text=True, check=True
        ).stdout
    )
    by_format = collections.defaultdict(list)
    for info in listed:
        if not info["unsupported"] and (args.format is None or info["format"].lower() == args.format.lower()):
            by_format[info["format"]].append(info["identifier"])
    chosen = [(fmt, i) for fmt, ids in sorted(by_format.items()) for i in ids[:: args.every]]
    fmt_of = dict((i, fmt) for fmt, i in chosen)
    identifiers = [i for _, i in chosen]
    rows = []
    for start in range(0, len(identifiers), args.batch):
        rows += run_batch(identifiers[start : start + args.batch], args.timeout)
        print(f"  {len(rows)}/{len(identifiers)} tried", file=sys.stderr, flush=True)
    counts = collections.defaultdict(collections.Counter)
    for row in rows:
        process, sandbox = row["process"], row["sandbox"]
        if process[0] == "skip":
            verdict = "skipped (no parameter)"
        elif process[0] == "ok" and sandbox[0] == "ok":
            verdict = "works in both, bit-identical" if process[1] == sandbox[1] else "works in both, outputs differ"
        elif process[0] == "ok":
            verdict = "works only without the sandbox"
        elif sandbox[0] == "ok":
            verdict = "works only in the sandbox"
        else:
            verdict = "fails in both"
        counts[fmt_of[row["identifier"]]][verdict] += 1
        if verdict not in ("works in both, bit-identical", "skipped (no parameter)"):
            print(f"{verdict}: {row['identifier']}: process {process[1][:120]}; sandbox {sandbox[1][:120]}")
    print(f"\n{len(rows)} plugins (every {args.every} of each format, of {len(listed)} listed):")
    for fmt, counter in sorted(counts.items()):
        print(f"  {fmt:7} " + ", ".join(f"{n} {verdict}" for verdict, n in counter.most_common()))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
