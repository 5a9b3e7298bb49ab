#!/usr/bin/env python3
"""What isolation costs: isolated (lanes in fxgrad-worker processes) vs in-process racks, side by
side on the same cores, in steps/s, memory per lane and crash recovery time.

A step is forward + two-sided lockstep SPSA vjp (bench/spsa_bench.py's definition). Chains: the
DeepAFx mastering chain (Calf Multiband Compressor -> LSP Graphic EQ x32 -> LSP Limiter, P=50)
at M = 8, 32, 128 and fxgrad's Gain (P=1) at M = 32, where host overhead is all there is. Each
measurement runs in a fresh process; in-process and isolated alternate (ABAB...) so that slow
drifts of a shared machine hit both. Memory counts the workers' RSS with the parent's. Recovery:
a worker killed with SIGKILL between steps; the next step restarts it (rack.stats()
"recovery_seconds") and carries on.

    .venv/bin/python bench/isolation_bench.py                      # the full table (minutes)
    .venv/bin/python bench/isolation_bench.py --lanes 8 --chains gain --min-seconds 1   # a quick look
    .venv/bin/python bench/isolation_bench.py --isolations process,sandbox   # what the sandbox adds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spsa_bench import mib, run_isolated  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chains", default="mastering,gain")
    p.add_argument("--lanes", default="8,32,128", help="lane counts for the mastering chain (Gain: 32)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--block", type=int, default=256)
    p.add_argument("--frame", type=int, default=1024)
    p.add_argument("--workers", default="0", help="comma list of worker counts to compare (0: automatic)")
    p.add_argument("--isolations", default="process", help="comma list of isolations to compare with none")
    p.add_argument("--rounds", type=int, default=3, help="ABAB rounds per configuration (median reported)")
    p.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per measurement")
    args = p.parse_args(argv)

    configs = []
    for chain in args.chains.split(","):
        lanes = [int(m) for m in args.lanes.split(",")] if chain == "mastering" else [32]
        configs += [(chain, M) for M in lanes]
    worker_counts = [int(w) for w in args.workers.split(",")]
    isolations = args.isolations.split(",")
    print(f"threads={args.threads} block={args.block} frame={args.frame} rounds={args.rounds}")
    print(
        f"{'chain':10} {'M':>4} {'isolation':>9} {'workers':>7} {'in-process st/s':>16} {'isolated st/s':>14} "
        f"{'ratio':>6} {'MiB/lane in':>12} {'MiB/lane iso':>13} {'recovery s':>11}"
    )
    for chain, M in configs:
        variants = [("none", 0)] + [(isolation, w) for isolation in isolations for w in worker_counts]
        rates = {v: [] for v in variants}
        memory, recovery, workers = {}, {}, {}
        for r in range(args.rounds):
            for isolation, count in variants:
                result = run_isolated(
                    spec_name=chain,
                    M=M,
                    threads=args.threads,
                    block=args.block,
                    n=args.frame,
                    steps=5,
                    repeats=1,
                    warmup=3,
                    min_seconds=args.min_seconds,
                    isolation=isolation,
                    workers=count,
                    recovery=isolation != "none" and r == 0,
                )
                rates[(isolation, count)].append(result["steps_per_s"])
                memory[(isolation, count)] = result["rss_per_lane"]
                workers[(isolation, count)] = result["workers"]
                if "recovery_s" in result:
                    recovery[(isolation, count)] = result["recovery_s"]
        base = rates[("none", 0)]
        for variant in variants[1:]:
            # Paired: each round's isolated rate over the same round's in-process rate, median.
            ratio = statistics.median(y / x for x, y in zip(base, rates[variant]))
            print(
                f"{chain:10} {M:4d} {variant[0]:>9} {workers[variant]:7d} {statistics.median(base):16.2f} "
                f"{statistics.median(rates[variant]):14.2f} {ratio:6.3f} {mib(memory[('none', 0)]):>12} "
                f"{mib(memory[variant]):>13} {recovery[variant]:11.3f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
