"""Rack construction time: the same rack built in a fresh process, then again after other racks
were built and dropped in that process. Construction must not slow down with what the process
did before (target: within 1.5x).

The measured rack: fxgrad's Gain x 3 in series (LV2), lockstep two-sided SPSA, ``--lanes`` lanes
x 2 ``--perturbations`` evaluators (plus a centre chain per lane): (lanes x (2K + 1)) chains of
3 instances. In between, ``--others`` racks are built, run for one step and dropped, cycling
through a third-party LV2 chain (Calf Compressor -> ZamComp), fxgrad's own Compressor as VST3, a
LADSPA plugin (ZamComp's) and fxgrad's Gain chain itself, each ``--other-lanes`` lanes x
``--other-perturbations`` perturbations.

Each measurement runs in a fresh process (``--repeats`` times, median reported), so the fresh
figure is truly fresh. Prints one table row per phase and the ratio.

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

WORKER = r'''
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
    start = time.perf_counter()
    r = rack(chain, args["lanes"], args["perturbations"])
    seconds = time.perf_counter() - start
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
    others(args["others"])
    seconds = measured()
print(json.dumps({"seconds": seconds}))
'''


def run(phase: str, options: argparse.Namespace) -> float:
    payload = json.dumps({"phase": phase, **{k: getattr(options, k) for k in
                                             ("lanes", "perturbations", "others", "other_lanes", "other_perturbations")}})
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(WORKER), payload], capture_output=True, text=True,
                            cwd=ROOT, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"rack_build_bench: the {phase} run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--perturbations", type=int, default=125, help="K; lockstep keeps 2K evaluators per lane")
    parser.add_argument("--others", type=int, default=10, help="racks built and dropped before the second build")
    parser.add_argument("--other-lanes", type=int, default=4)
    parser.add_argument("--other-perturbations", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per phase (median)")
    parser.add_argument("--max-ratio", type=float, default=1.5)
    parser.add_argument("--json", help="write the figures here")
    options = parser.parse_args()

    instances = options.lanes * (2 * options.perturbations + 1) * 3
    figures = {"fresh": [], "after": []}
    for _ in range(options.repeats):  # interleaved, so that load changes hit both phases alike
        for phase in figures:
            figures[phase].append(run(phase, options))
    fresh, after = (statistics.median(figures[p]) for p in ("fresh", "after"))
    ratio = after / fresh
    print(f"rack: fxgrad Gain x 3, {options.lanes} lanes x (2 x {options.perturbations} + 1) chains = "
          f"{instances} instances; {options.repeats} fresh process(es) per phase, median")
    print(f"{'phase':<40} {'build s':>9} {'us/instance':>12}")
    print(f"{'fresh process':<40} {fresh:>9.2f} {1e6 * fresh / instances:>12.0f}")
    print(f"{f'after it and {options.others} other racks were dropped':<40} {after:>9.2f} "
          f"{1e6 * after / instances:>12.0f}")
    verdict = "PASS" if ratio <= options.max_ratio else "FAIL"
    print(f"ratio after/fresh: {ratio:.2f} ({verdict}: at most {options.max_ratio})")
    if options.json:
        Path(options.json).write_text(json.dumps({"instances": instances, "fresh": figures["fresh"],
                                                  "after": figures["after"], "ratio": ratio}, indent=2))
    return 0 if ratio <= options.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
