#!/usr/bin/env python3
"""Where a rack step's thread time goes with light plugins: fxgrad's own MultibandCompressor ->
ParametricEQ -> Limiter (stereo, 1024-sample frames, every automatable parameter learned),
lockstep two-sided SPSA (K=1: 3 renders per lane and step).

A step is forward + vjp, timed in Python around the two calls. The threads' time (wall x threads)
splits into:

* **DSP**: inside the plugins (``rack.stats()["dsp_seconds"]``: setting the parameters and
  processing the frame);
* **tasks, not DSP**: the rest of the lanes' tasks (copying the recorded frame, dot products);
* **hand-offs**: waking the pool's threads and returning once they are done (from a phase's
  start to its first task, and from its last task's end to its return; ``handoff_seconds``);
* **waiting**: threads idle inside a phase, between its first task's start and its last task's
  end (unequal shares of the tasks);
* **outside the phases** (a share of the wall time): everything before, between and after them
  (the Python call, the binding's argument checks and output arrays, the rack's serial
  bookkeeping: perturbations, checks of theta and of the upstream gradient, the gradient's
  reduction), during which the pool's threads wait; **in rack**: the share of the wall time
  inside the rack's forward/vjp (the rest is Python and the binding).

The last two need in-process lanes (isolated lanes report DSP only). Every measurement runs in a
fresh process; with ``--sites A,B`` each variant runs with PYTHONPATH=A, then B, alternating per
round (paired ratios: e.g. two builds of fxgrad installed into two folders).

    .venv/bin/python bench/rack_overhead_bench.py --threads 2 --lanes 32 --rounds 1
    python3 bench/rack_overhead_bench.py --threads 16 --lanes 32,128 --isolation none,process
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SR = 22050
CHAIN = ["fxgrad:MultibandCompressor", "fxgrad:ParametricEQ", "fxgrad:Limiter"]


def measure(lanes: int, threads: int, isolation: str, block: int, frame: int, seconds: float) -> dict:
    """One measurement in this process: steps/s and the split of the threads' time."""
    import numpy as np

    import fxgrad
    from fxgrad import _native

    plugins = [fxgrad.load(name, sample_rate=SR, block_size=block, channels=2) for name in CHAIN]
    chain = fxgrad.Chain(plugins)
    P = chain.num_parameters
    rack = _native.Rack(chain, lanes, 0.01, 1, "lockstep", "two-sided", 0, threads, 0, isolation=isolation)
    rng = np.random.default_rng(0)
    frames = 32
    t = np.arange(frames * frame) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    audio = (tone + 0.05 * rng.standard_normal((lanes, 2, t.size))).astype(np.float32)
    xs = [np.ascontiguousarray(audio[:, :, f * frame : (f + 1) * frame]) for f in range(frames)]
    thetas = rng.uniform(0.2, 0.8, (frames, lanes, P)).astype(np.float32)
    grads = (0.1 * rng.standard_normal((frames, lanes, 2, frame))).astype(np.float32)

    def step(s: int) -> None:
        k = s % frames
        rack.forward(thetas[k], xs[k], True)
        rack.vjp(grads[k])

    for s in range(10):
        step(s)
    rack.reset_stats()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 20:
        step(done)
        done += 1
    wall = time.perf_counter() - start
    stats = rack.stats()
    thread_time = wall * rack.threads
    out = dict(lanes=lanes, threads=rack.threads, isolation=isolation, P=P, steps_per_s=done / wall)
    out["dsp"] = stats["dsp_seconds"] / thread_time
    busy, phases = stats.get("busy_seconds", 0.0), stats.get("phase_seconds", 0.0)
    if busy > 0:  # in-process lanes of a build that reports them
        out["tasks_not_dsp"] = (busy - stats["dsp_seconds"]) / thread_time
        handoff = stats.get("handoff_seconds", 0.0)
        out["handoffs"] = handoff * rack.threads / thread_time
        out["waiting"] = ((phases - handoff) * rack.threads - busy) / thread_time
        out["outside_phases"] = (wall - phases) / wall
        out["rack_calls"] = stats["wall_seconds"] / wall  # the rest is the Python side of the calls
    out["dsp_ms_per_render"] = 1e3 * stats["dsp_seconds"] / max(1, stats["evaluations"])
    return out


def run_child(site: str, **kwargs) -> dict:
    """:func:`measure` in a fresh interpreter, with ``site`` first on PYTHONPATH (none: as is)."""
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(kwargs)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed ({site or 'default'}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--lanes", default="32,128")
    p.add_argument("--isolation", default="none", help="comma list of none, process")
    p.add_argument("--sites", default="", help="comma list of PYTHONPATH folders to compare (empty: this one)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per configuration (medians)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--frame", type=int, default=1024)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(**json.loads(args.child))))
        return 0
    sites = args.sites.split(",") if args.sites else [""]
    load = os.getloadavg()
    print(
        f"rack_overhead_bench: {' -> '.join(CHAIN)}, stereo, frames of {args.frame}, block {args.block}, lockstep "
        f"two-sided K=1; {args.threads} threads on {os.cpu_count()} cores, load average {load[0]:.2f}"
    )
    columns = ("dsp", "tasks_not_dsp", "handoffs", "waiting", "outside_phases", "rack_calls")
    print(
        f"{'site':>14} {'isolation':>9} {'M':>4} {'steps/s':>8} {'DSP':>6} {'tasks':>6} {'hand':>6} {'wait':>6} "
        f"{'outside':>7} {'in rack':>7} {'ms/render':>9}  (shares of wall x threads; outside, in rack: of wall)"
    )
    for isolation in args.isolation.split(","):
        for lanes in [int(m) for m in args.lanes.split(",")]:
            runs = {site: [] for site in sites}
            for _ in range(args.rounds):
                for site in sites:
                    runs[site].append(
                        run_child(
                            site,
                            lanes=lanes,
                            threads=args.threads,
                            isolation=isolation,
                            block=args.block,
                            frame=args.frame,
                            seconds=args.seconds,
                        )
                    )
            for site in sites:
                rows = runs[site]

                def median(key: str, rows=rows) -> str:
                    values = [r[key] for r in rows if key in r]
                    return f"{statistics.median(values):.3f}" if values else "-"

                rate = statistics.median(r["steps_per_s"] for r in rows)
                ratio = ""
                if site != sites[0]:
                    paired = [b["steps_per_s"] / a["steps_per_s"] for a, b in zip(runs[sites[0]], rows)]
                    ratio = f"  x{statistics.median(paired):.3f} vs {os.path.basename(sites[0]) or 'default'}"
                print(
                    f"{os.path.basename(site) or 'default':>14} {isolation:>9} {lanes:>4} {rate:8.1f} "
                    + " ".join(f"{median(c):>6}" for c in columns[:4])
                    + f" {median(columns[4]):>7} {median(columns[5]):>7} {median('dsp_ms_per_render'):>9}{ratio}",
                    flush=True,
                )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
