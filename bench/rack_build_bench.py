"""Rack construction time: the same rack built in a fresh process, then again after a plugin
scan and other racks built and dropped in that process. Construction must not slow down with
what the process did before (target: within 1.5x).

What slowed it down: JUCE 7's LV2 host builds each new instance's parameter groups from every
port group in its LV2 world, and a scan (``fxgrad.scan()``, which the test suite runs several
times) used to describe every installed plugin in the host's world, loading all their data into
it for good: every instance then cost ~8x as much. Scans now describe LV2 plugins in a world of
their own (cpp/fxgrad/Host.cpp); the ``after`` phase runs a scan to show that it no longer matters.

The measured rack: fxgrad's Gain x 3 in series (LV2), lockstep two-sided SPSA, ``--lanes`` lanes
x 2 ``--perturbations`` evaluators (plus a centre chain per lane): (lanes x (2K + 1)) chains of
3 instances. In between, ``fxgrad.scan()`` runs (``--no-scan`` leaves it out) and ``--others``
racks are built, run for one step and dropped, cycling through a third-party LV2 chain (Calf Compressor ->
ZamComp), fxgrad's own Compressor as VST3, a LADSPA plugin (ZamComp's) and fxgrad's Gain chain itself,
each ``--other-lanes`` lanes x ``--other-perturbations`` perturbations.

Each measurement runs in a fresh process (``--repeats`` times, interleaved, median reported), so
the fresh figure is truly fresh. Prints wall and CPU seconds (the process's, all threads) per
phase; the verdict uses CPU seconds, which other load on a shared machine disturbs less.

    .venv/bin/python bench/rack_build_bench.py                         # 8 x 2x125 evaluators: 6,024 instances
    .venv/bin/python bench/rack_build_bench.py --lanes 8 --perturbations 1000 --repeats 1   # the old test's 48,024
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import gc, json, sys, time
import numpy as np
import fxgrad
from fxgrad import _native

args = json.loads(sys.argv[1])
SR, N = 22050, 1024
CALF = "http://calf.sourceforge.net/plugins/Compressor"
ZAMCOMP = "urn:zamaudio:ZamComp"
ZAMCOMP_LADSPA = "/usr/lib/ladspa/ZamComp-ladspa.so"

def load(identifier):
    return fxgrad.load(identifier, sample_rate=SR, block_size=256, channels=1)

def rack(chain, lanes, k):
    return _native.Rack(chain, lanes, 0.01, k, "lockstep", "two-sided", 0, 1, 0)

def step(r, lanes, params):
    x = (np.random.default_rng(0).standard_normal((lanes, 1, N)) * 0.1).astype(np.float32)
    r.forward(np.full((lanes, params), 0.5, np.float32), x)
    r.vjp(x)

def measured():
    chain = fxgrad.Chain([load("fxgrad:Gain") for _ in range(3)])
    start, cpu = time.perf_counter(), time.process_time()
    r = rack(chain, args["lanes"], args["perturbations"])
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    step(r, args["lanes"], 3)
    del r, chain
    gc.collect()
    return seconds

def others(count):
    makers = [
        lambda: fxgrad.Chain([load(CALF), load(ZAMCOMP)]),
        lambda: fxgrad.Chain([load("fxgrad:Compressor/vst3")]),
        lambda: fxgrad.Chain([load(ZAMCOMP_LADSPA)]),
        lambda: fxgrad.Chain([load("fxgrad:Gain") for _ in range(3)]),
    ]
    for i in range(count):
        chain = makers[i % len(makers)]()
        r = rack(chain, args["other_lanes"], args["other_perturbations"])
        step(r, args["other_lanes"], chain.num_parameters)
        del r, chain
        gc.collect()

if args["phase"] == "fresh":
    seconds = measured()
else:
    measured()                       # the same rack once, as the suite builds racks again and again
    if args["scan"]:
        fxgrad.scan()
    others(args["others"])
    seconds = measured()
print(json.dumps({"wall": seconds[0], "cpu": seconds[1]}))
"""


def run(phase: str, options: argparse.Namespace) -> dict:
    payload = json.dumps(
        {
            "phase": phase,
            **{
                k: getattr(options, k)
                for k in ("lanes", "perturbations", "others", "other_lanes", "other_perturbations", "scan")
            },
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WORKER), payload], capture_output=True, text=True, cwd=ROOT, timeout=3600
    )
    if result.returncode != 0:
        raise SystemExit(f"rack_build_bench: the {phase} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--perturbations", type=int, default=125, help="K; lockstep keeps 2K evaluators per lane")
    parser.add_argument("--others", type=int, default=10, help="racks built and dropped before the second build")
    parser.add_argument("--other-lanes", type=int, default=4)
    parser.add_argument("--other-perturbations", type=int, default=16)
    parser.add_argument("--no-scan", dest="scan", action="store_false", help="no fxgrad.scan() before the others")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per phase (median)")
    parser.add_argument("--max-ratio", type=float, default=1.5)
    parser.add_argument("--json", help="write the figures here")
    options = parser.parse_args()

    instances = options.lanes * (2 * options.perturbations + 1) * 3
    figures = {"fresh": [], "after": []}
    for _ in range(options.repeats):  # interleaved, so that load changes hit both phases alike
        for phase in figures:
            figures[phase].append(run(phase, options))
    median = {p: {k: statistics.median(f[k] for f in figures[p]) for k in ("wall", "cpu")} for p in figures}
    ratio = median["after"]["cpu"] / median["fresh"]["cpu"]
    print(
        f"rack: fxgrad Gain x 3, {options.lanes} lanes x (2 x {options.perturbations} + 1) chains = "
        f"{instances} instances; {options.repeats} fresh process(es) per phase, median"
    )
    print(f"{'phase':<36} {'wall s':>8} {'CPU s':>8} {'CPU us/instance':>16}")
    labels = {
        "fresh": "fresh process",
        "after": f"after it, {'a scan, ' if options.scan else ''}{options.others} other racks",
    }
    for phase, label in labels.items():
        print(
            f"{label:<36} {median[phase]['wall']:>8.2f} {median[phase]['cpu']:>8.2f} "
            f"{1e6 * median[phase]['cpu'] / instances:>16.0f}"
        )
    verdict = "PASS" if ratio <= options.max_ratio else "FAIL"
    print(
        f"ratio after/fresh (CPU): {ratio:.2f} ({verdict}: at most {options.max_ratio}); wall: "
        f"{median['after']['wall'] / median['fresh']['wall']:.2f}"
    )
    if options.json:
        Path(options.json).write_text(json.dumps({"instances": instances, **figures, "ratio_cpu": ratio}, indent=2))
    return 0 if ratio <= options.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
