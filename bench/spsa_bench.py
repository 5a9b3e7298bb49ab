#!/usr/bin/env python3
"""Throughput, engine efficiency and memory of the SPSA rack, against a DeepAFx-style Python
implementation on the same plugins and cores.

A *step* is what one training step asks of the effects: forward (one N=1024 frame per lane through
the centre chain) + vjp (two-sided SPSA, K=1, the lockstep strategy as in DeepAFx: two more chains
per lane render theta +- eps Delta). Chains:

* ``mastering``: Calf Multiband Compressor (bands un-bypassed) -> LSP Graphic Equalizer x32 Mono ->
  LSP Limiter Mono, mono, 50 learned parameters (the DeepAFx mastering task).
* ``gain``: fxgrad's Gain alone (P=1): the DSP is nearly free, so what is measured is the host's
  overhead.

For each lane count M it prints steps/s, the engine efficiency (DSP time inside the plugins /
(wall x threads), from ``rack.stats()``), the ratio to the DSP bound, RSS per lane, and the same
steps/s for the baseline: one worker process per lane (multiprocessing, Pipe) holding 3 chain
instances (centre, +, -) made of fxgrad's single-plugin ``process`` (as DeepAFx drove lilv), the
parent sending theta/x and receiving outputs and computing the SPSA gradient in numpy.

Each fxgrad measurement runs in its own fresh process (clean RSS accounting). See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Dict, List, Tuple

import numpy as np

SR = 22050
CALF_MBC = "http://calf.sourceforge.net/plugins/MultibandCompressor"
LSP_GEQ = "http://lsp-plug.in/plugins/lv2/graph_equalizer_x32_mono"
LSP_LIMITER = "http://lsp-plug.in/plugins/lv2/limiter_mono"
GIB = 1024**3

# The mastering chain's 50 learned parameters, by plugin index: the compressor's per-band
# threshold/ratio/makeup/release (16), the 32 EQ band gains, the limiter's threshold and release.
MASTERING = {
    "plugins": [CALF_MBC, LSP_GEQ, LSP_LIMITER],
    "learned": [f"0.{k}{b}" for k in ("threshold", "ratio", "makeup", "release") for b in range(4)]
    + [f"1.g_{b}" for b in range(32)]
    + ["2.th", "2.rt"],
    "pinned": {f"0.bypass{b}": 0.0 for b in range(4)},
}
GAIN = {"plugins": ["fxgrad:Gain"], "learned": None, "pinned": {}}
CHAINS = {"mastering": MASTERING, "gain": GAIN}


def rss_bytes(pid: str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: str = "self") -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


def load_plugins(spec: dict, block: int) -> list:
    import fxgrad

    return [fxgrad.load(p, sample_rate=SR, block_size=block, channels=1) for p in spec["plugins"]]


def build_chain(spec: dict, block: int):
    import fxgrad

    plugins = load_plugins(spec, block)
    return fxgrad.Chain(plugins, learned=spec["learned"], pinned=spec["pinned"])


def material(seconds: float, seed: int = 0) -> np.ndarray:
    """Program material from the gradient-fidelity bench (drums, bass, chords with dynamics)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gradient_fidelity import program_material

    return program_material(seconds, SR, seed=seed)[0]


def workload(M: int, P: int, n: int, frames: int, seed: int = 0):
    """Per-step inputs shared by fxgrad and the baseline: lane m plays the clip from its own
    offset (consecutive frames), a smooth theta per lane, an upstream gradient."""
    clip = material(max(4.0, (frames + 8) * n / SR + 1.0), seed)
    F = len(clip) // n
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, F, M)
    xs = np.empty((frames, M, 1, n), np.float32)
    for s in range(frames):
        for m in range(M):
            f = (offsets[m] + s) % F
            xs[s, m, 0] = clip[f * n : (f + 1) * n]
    base = rng.uniform(0.3, 0.7, (M, P))
    rate = rng.uniform(0.01, 0.05, (M, P))
    thetas = np.stack([base + 0.2 * np.sin(rate * s) for s in range(frames)]).astype(np.float32)
    grads = (rng.standard_normal((frames, M, 1, n)) * 0.1).astype(np.float32)
    return thetas, xs, grads


def timed_steps(step, steps: int, min_seconds: float) -> Tuple[int, float]:
    """Runs at least `steps` steps and at least `min_seconds`; returns (steps, seconds)."""
    done, start = 0, time.perf_counter()
    while True:
        for _ in range(steps):
            step(done)
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done, elapsed


# --------------------------------------------------------------------------------------------
# fxgrad (runs in a fresh process per measurement)
# --------------------------------------------------------------------------------------------


def fxgrad_measure(
    spec_name: str,
    M: int,
    threads: int,
    block: int,
    n: int,
    steps: int,
    repeats: int,
    warmup: int,
    min_seconds: float,
    memory_only: bool = False,
    isolation: str = "none",
    recovery: bool = False,
    workers: int = 0,
) -> dict:
    from fxgrad import _native

    spec = CHAINS[spec_name]
    chain = build_chain(spec, block)
    P = chain.num_parameters
    frames = 64
    thetas, xs, grads = workload(M, P, n, frames)
    gc.collect()
    malloc_trim()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    rack = _native.Rack(
        chain,
        M,
        0.01,
        1,
        "lockstep",
        "two-sided",
        0,
        threads,
        0,
        isolation=isolation,
        workers=workers,
        worker_log=os.devnull,
    )
    build_seconds = time.perf_counter() - t0

    def rss_all() -> int:  # the workers' memory counts too
        return rss_bytes() + sum(rss_bytes(str(pid)) for pid in rack.worker_pids)

    rss_built = rss_all()

    def step(s: int) -> None:
        k = s % frames
        rack.forward(thetas[k], xs[k], True)
        rack.vjp(grads[k])

    for s in range(max(1, warmup)):
        step(s)
    rss_warm = rss_all()
    result = dict(
        M=M,
        P=P,
        threads=rack.threads,
        evaluators=rack.evaluators_per_lane,
        build_seconds=build_seconds,
        workers=len(rack.worker_pids),
        rss_before=rss0,
        rss_built=rss_built,
        rss_warm=rss_warm,
        rss_per_lane=(rss_warm - rss0) / M,
        rss_total=rss_warm,
    )
    if memory_only:
        return result
    rates, effs, dsp_per_step, rack_effs, overheads, shares = [], [], [], [], [], []
    for _ in range(repeats):
        rack.reset_stats()
        cpu0 = cpu_seconds()
        done, seconds = timed_steps(step, steps, min_seconds)
        shares.append((cpu_seconds() - cpu0) / (seconds * rack.threads))
        st = rack.stats()
        rates.append(done / seconds)
        effs.append(st["dsp_seconds"] / (seconds * rack.threads))
        rack_effs.append(st["dsp_seconds"] / (st["wall_seconds"] * rack.threads))
        dsp_per_step.append(st["dsp_seconds"] / done)
        overheads.append((seconds - st["dsp_seconds"] / rack.threads) / done)
    result.update(
        steps_per_s=statistics.median(rates),
        efficiency=statistics.median(effs),
        rack_efficiency=statistics.median(rack_effs),
        dsp_per_step=statistics.median(dsp_per_step),
        overhead_per_step=statistics.median(overheads),
        cpu_share=statistics.median(shares),
        renders_per_step=3 * M,
    )
    result["dsp_bound"] = rack.threads / result["dsp_per_step"]
    if recovery and rack.worker_pids:
        # Crash recovery: a worker killed between steps; the next step finds it dead, restarts it
        # (loading its share of the instances) and carries on with the other workers' lanes.
        import signal

        times = []
        for k in range(3):
            os.kill(rack.worker_pids[k % len(rack.worker_pids)], signal.SIGKILL)
            time.sleep(0.05)
            before = rack.stats()["recovery_seconds"]
            t = time.perf_counter()
            step(k)
            times.append((time.perf_counter() - t, rack.stats()["recovery_seconds"] - before))
        result["recovery_step_s"] = statistics.median(t for t, _ in times)
        result["recovery_s"] = statistics.median(r for _, r in times)
    return result


def _fxgrad_child(queue, kwargs):
    try:
        queue.put(("ok", fxgrad_measure(**kwargs)))
    except BaseException as e:  # report, don't hang the parent
        queue.put(("error", f"{type(e).__name__}: {e}"))


def run_isolated(**kwargs) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_fxgrad_child, args=(queue, kwargs))
    proc.start()
    status, payload = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(payload)
    return payload


# --------------------------------------------------------------------------------------------
# DeepAFx-style baseline: a worker process per lane, 3 chains of single plugins each, a Pipe
# --------------------------------------------------------------------------------------------


class PlainChain:
    """Plugins in series driven one plugin at a time through ``Plugin.set`` / ``Plugin.process``,
    as DeepAFx drove lilv instances: no fxgrad Chain, no rack."""

    def __init__(self, spec: dict, block: int):
        self.plugins = load_plugins(spec, block)
        for name, value in spec["pinned"].items():
            index, pid = name.split(".", 1)
            self.plugins[int(index)].set(pid, float(value))
        if spec["learned"] is None:
            self.learned = [
                (k, q.index)
                for k, p in enumerate(self.plugins)
                for q in p.parameters
                if q.automatable and not q.is_bypass
            ]
        else:
            self.learned = []
            for name in spec["learned"]:
                index, pid = name.split(".", 1)
                self.learned.append((int(index), self.plugins[int(index)].parameter_index(pid)))

    def render(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        for (k, index), value in zip(self.learned, theta.tolist()):
            self.plugins[k].set(index, value, True)
        # view(): an unpickled float32 array carries an equal but not identical dtype object, which
        # fxgrad's bindings refuse ("must have dtype float32, got float32"); see bench/README.md.
        y = x.view(np.float32)
        for p in self.plugins:
            y = p.process(y)
        return y


def _baseline_worker(conn, spec: dict, block: int) -> None:
    try:
        chains = [PlainChain(spec, block) for _ in range(3)]  # centre, +eps, -eps
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", len(chains[0].learned)))
    while True:
        msg = conn.recv()
        kind = msg[0]
        if kind == "forward":
            conn.send(chains[0].render(msg[1], msg[2]))
        elif kind == "perturbed":
            conn.send((chains[1].render(msg[1], msg[3]), chains[2].render(msg[2], msg[3])))
        elif kind == "stop":
            conn.close()
            return


class Baseline:
    def __init__(self, spec: dict, M: int, block: int, eps: float = 0.01, seed: int = 0):
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(M):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_baseline_worker, args=(child, spec, block), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.P = None
        for c in self.conns:
            status, payload = c.recv()
            if status != "ready":
                self.close()
                raise RuntimeError(f"a baseline worker failed to start: {payload}")
            self.P = payload
        self.eps = eps
        self.rng = np.random.default_rng(seed)
        self.x = None

    def forward(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        self.theta, self.x = theta, x
        for m, c in enumerate(self.conns):
            c.send(("forward", theta[m], x[m]))
        return np.stack([c.recv() for c in self.conns])

    def vjp(self, grad_y: np.ndarray) -> np.ndarray:
        M, P = self.theta.shape
        delta = self.rng.choice(np.array([-1.0, 1.0], np.float32), size=(M, P))
        up = np.clip(self.theta + self.eps * delta, 0.0, 1.0).astype(np.float32)
        down = np.clip(self.theta - self.eps * delta, 0.0, 1.0).astype(np.float32)
        for m, c in enumerate(self.conns):
            c.send(("perturbed", up[m], down[m], self.x[m]))
        grad = np.empty((M, P), np.float32)
        for m, c in enumerate(self.conns):
            y_up, y_down = c.recv()
            difference = float(np.dot(grad_y[m].ravel(), (y_up - y_down).ravel()))
            grad[m] = difference / (up[m] - down[m])
        return grad

    def rss(self) -> int:
        return sum(rss_bytes(str(p.pid)) for p in self.procs)

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send(("stop",))
            except OSError:
                pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


def baseline_measure(
    spec_name: str, M: int, block: int, n: int, steps: int, repeats: int, warmup: int, min_seconds: float
) -> dict:
    spec = CHAINS[spec_name]
    t0 = time.perf_counter()
    base = Baseline(spec, M, block)
    start_seconds = time.perf_counter() - t0
    try:
        frames = 64
        thetas, xs, grads = workload(M, base.P, n, frames)

        def step(s: int) -> None:
            k = s % frames
            base.forward(thetas[k], xs[k])
            base.vjp(grads[k])

        for s in range(max(1, warmup)):
            step(s)
        rss = base.rss()
        rates, shares = [], []
        pids = ["self"] + [str(p.pid) for p in base.procs]
        cores = len(os.sched_getaffinity(0))
        for _ in range(repeats):
            cpu0 = sum(cpu_seconds(p) for p in pids)
            done, seconds = timed_steps(step, steps, min_seconds)
            shares.append((sum(cpu_seconds(p) for p in pids) - cpu0) / (seconds * cores))
            rates.append(done / seconds)
        return dict(
            M=M,
            steps_per_s=statistics.median(rates),
            rss_children=rss,
            rss_per_lane=rss / M,
            start_seconds=start_seconds,
            cpu_share=statistics.median(shares),
        )
    finally:
        base.close()


# --------------------------------------------------------------------------------------------


def mib(b: float) -> str:
    return f"{b / 2**20:.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    cores = len(os.sched_getaffinity(0))
    p.add_argument("--threads", type=int, default=cores, help="rack threads (and CPUs the benchmark may use)")
    p.add_argument("--lanes", default="8,32,128", help="comma list of M")
    p.add_argument("--chains", default="mastering,gain", help="comma list of: mastering, gain")
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat (at least --min-seconds)")
    p.add_argument("--min-seconds", type=float, default=1.0, help="least wall time per repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; medians are reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument(
        "--baseline-lanes",
        type=int,
        default=32 if cores <= 4 else 128,
        help="largest M for the Python baseline (one process per lane); larger M are not run",
    )
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--memory-lanes", type=int, default=128, help="lanes of the memory check (x3 mastering chains)")
    p.add_argument("--memory-limit-gib", type=float, default=4.0)
    p.add_argument("--block", type=int, default=1024, help="plugin block size (one run() per frame, as DeepAFx)")
    p.add_argument("--frame", type=int, default=1024, help="N")
    p.add_argument("--no-pin", action="store_true", help="don't restrict the benchmark to --threads CPUs")
    p.add_argument("--quick", action="store_true", help="M in {8,32}, fewer/shorter repeats")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if args.quick:
        if args.lanes == p.get_default("lanes"):
            args.lanes = "8,32"
        args.repeats, args.min_seconds, args.warmup = (
            min(args.repeats, 2),
            min(args.min_seconds, 0.4),
            min(args.warmup, 2),
        )
    lanes = [int(v) for v in args.lanes.split(",")]
    chains = args.chains.split(",")
    for c in chains:
        if c not in CHAINS:
            p.error(f"unknown chain {c!r}")

    allowed = sorted(os.sched_getaffinity(0))
    pinned_note = "all allowed CPUs"
    if not args.no_pin and args.threads < len(allowed):
        os.sched_setaffinity(0, allowed[: args.threads])  # inherited by the worker processes
        pinned_note = f"pinned to CPUs {allowed[: args.threads]}"
    load = os.getloadavg()
    print(
        f"spsa_bench: {os.cpu_count()} cores on this machine ({len(allowed)} allowed), rack threads={args.threads}, "
        f"{pinned_note}; load average {load[0]:.2f} at start"
    )
    print(
        f"step = forward + vjp (two-sided SPSA, K=1, lockstep: 3 chain renders per lane) of one N={args.frame} frame "
        f"per lane at {SR} Hz, block {args.block}; medians of {args.repeats} repeats of >= {args.steps} steps and "
        f">= {args.min_seconds:g} s after {args.warmup} warm-up steps"
    )
    print(
        "efficiency = plugin DSP time / (wall x threads) (rack.stats(), wall timed around forward+vjp in Python); "
        "DSP bound = threads / DSP seconds per step;\nother us/step = wall - DSP/threads per step: time not spent in "
        "plugins (host bookkeeping, Python, thread hand-offs, idle threads at the end of each parallel phase);\n"
        "CPU got = CPU time the benchmark's processes received / (wall x CPUs it may use): below 1 when other load "
        "on the machine takes cores (then DSP time, a wall-clock measure inside the plugins, is inflated too);\n"
        "per CPU-s = the fxgrad/baseline ratio of steps per CPU-second received (fairer when the machine is busy: "
        "M baseline processes win more CPU share from other load than the rack's threads)"
    )
    if not args.no_baseline:
        print(
            f"baseline: DeepAFx-style, one process per lane (spawned, Pipe), 3 chains of single plugins each; "
            f"run for M <= {args.baseline_lanes}"
            + (" (capped by --baseline-lanes)" if max(lanes) > args.baseline_lanes else "")
        )

    results: Dict[str, List[dict]] = {}
    common = dict(
        block=args.block,
        n=args.frame,
        steps=args.steps,
        repeats=args.repeats,
        warmup=args.warmup,
        min_seconds=args.min_seconds,
    )
    for name in chains:
        print(
            f"\n=== {name}: "
            + (
                " -> ".join(["Calf Multiband Compressor", "LSP Graphic Equalizer x32 Mono", "LSP Limiter Mono"])
                if name == "mastering"
                else "fxgrad Gain"
            )
        )
        header = (
            f"{'M':>4} {'P':>3} | {'fxgrad steps/s':>14} {'efficiency':>10} {'DSP ms/step':>11} {'other us/step':>13} "
            f"{'vs DSP bound':>12} "
            f"{'CPU got':>7} {'RSS/lane MiB':>12} | {'baseline steps/s':>16} {'CPU got':>7} {'RSS/lane MiB':>12} | "
            f"{'fxgrad/baseline':>15} {'per CPU-s':>9}"
        )
        print(header)
        print("-" * len(header))
        rows = []
        for M in lanes:
            try:
                fx = run_isolated(spec_name=name, M=M, threads=args.threads, **common)
            except RuntimeError as e:
                print(f"{M:>4}     | fxgrad FAILED: {e}")
                continue
            base = None
            if not args.no_baseline and M <= args.baseline_lanes:
                base = baseline_measure(name, M, **common)
            row = dict(fxgrad=fx, baseline=base)
            rows.append(row)
            achieved_vs_bound = fx["steps_per_s"] / fx["dsp_bound"]
            line = (
                f"{M:>4} {fx['P']:>3} | {fx['steps_per_s']:14.1f} {fx['efficiency']:10.3f} "
                f"{fx['dsp_per_step'] * 1e3:11.3f} "
                f"{fx['overhead_per_step'] * 1e6:13.1f} "
                f"{achieved_vs_bound:12.3f} {fx['cpu_share']:7.2f} {mib(fx['rss_per_lane']):>12} | "
            )
            if base:
                per_cpu = (fx["steps_per_s"] / max(fx["cpu_share"], 1e-9)) / (
                    base["steps_per_s"] / max(base["cpu_share"], 1e-9)
                )
                line += (
                    f"{base['steps_per_s']:16.1f} {base['cpu_share']:7.2f} {mib(base['rss_per_lane']):>12} | "
                    f"{fx['steps_per_s'] / base['steps_per_s']:14.1f}x {per_cpu:8.1f}x"
                )
            else:
                line += f"{'(not run)':>16} {'-':>7} {'-':>12} | {'-':>15} {'-':>9}"
            print(line, flush=True)
        results[name] = rows

        # Targets.
        if rows:
            eff_target = 0.85 if args.threads <= 2 else 0.8
            for row in rows:
                fx = row["fxgrad"]
                if name == "mastering":
                    verdict = "PASS" if fx["efficiency"] >= eff_target else "MISS"
                    caveat = (
                        f" (CPU got {fx['cpu_share']:.2f}: the machine is busy, efficiency is not meaningful)"
                        if fx["cpu_share"] < 0.9
                        else ""
                    )
                    print(
                        f"  target efficiency >= {eff_target} with {args.threads} threads at M={fx['M']}: "
                        f"{fx['efficiency']:.3f} {verdict}{caveat}"
                    )
            if name == "gain":
                at32 = [r for r in rows if r["fxgrad"]["M"] == 32 and r["baseline"]]
                if at32:
                    ratio = at32[0]["fxgrad"]["steps_per_s"] / at32[0]["baseline"]["steps_per_s"]
                    print(
                        f"  target fxgrad >= 10x baseline steps/s with Gain at M=32: {ratio:.1f}x "
                        f"{'PASS' if ratio >= 10 else 'MISS'}"
                    )
            rack_line = ", ".join(
                f"M={r['fxgrad']['M']}: build {r['fxgrad']['build_seconds']:.2f} s, "
                f"in-rack efficiency {r['fxgrad']['rack_efficiency']:.3f}"
                for r in rows
            )
            print(f"  ({rack_line})")
            base_starts = [r["baseline"] for r in rows if r["baseline"]]
            if base_starts:
                print(
                    "  (baseline start-up: "
                    + ", ".join(f"M={b['M']}: {b['start_seconds']:.1f} s" for b in base_starts)
                    + ")"
                )

    if "mastering" in chains and args.memory_lanes > 0:
        existing = [r["fxgrad"] for r in results.get("mastering", []) if r["fxgrad"]["M"] == args.memory_lanes]
        mem = (
            existing[0]
            if existing
            else run_isolated(
                spec_name="mastering", M=args.memory_lanes, threads=args.threads, memory_only=True, **common
            )
        )
        grown = mem["rss_warm"] - mem["rss_before"]
        verdict = "PASS" if mem["rss_warm"] <= args.memory_limit_gib * GIB else "FAIL"
        print(
            f"\nmemory: {args.memory_lanes} lanes x {1 + mem['evaluators']} mastering chains: the rack adds "
            f"{grown / GIB:.3f} GiB ({mib(grown / mem['M'])} MiB per lane, "
            f"{mib(grown / mem['M'] / (1 + mem['evaluators']))} "
            f"MiB per chain); process RSS {mem['rss_warm'] / GIB:.3f} GiB (interpreter and libraries included) "
            f"<= {args.memory_limit_gib:g} GiB: {verdict}"
        )

    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min) on {len(allowed)} CPUs")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
