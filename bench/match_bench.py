#!/usr/bin/env python3
"""ST-ITO's setting, side by side: CMA-ES matching a reference through ZamEQ2 -> ZaMultiCompX2 ->
ZaMaximX2 (the VST3 bundles in /usr/lib/vst3), with fxgrad's batched renders against pedalboard
driven as ST-ITO drives it: a multiprocessing.Pool of one process per core, each holding its own
instances, rendering one candidate setting per task.

Both sides run the same CMA-ES loop (``fxgrad.match.optimise.optimise_cma``: the ``cma`` package,
population 32, sigma0 0.1, bounds [0, 1], same seed) on the same audio with the same loss
(``fxgrad.match.loss.MatchLoss``, computed in the parent for both), from the plugins' defaults, towards
a reference rendered from the same input at hidden settings. Per side it prints seconds per
iteration (all of it, and the rendering alone), the best loss reached, renders per second and,
for fxgrad, the plugins' DSP bound: threads / (DSP seconds of one render on one idle thread).

See bench/README.md ("match_bench.py").
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

VST3 = Path("/usr/lib/vst3")
CHAIN = ("ZamEQ2", "ZaMultiCompX2", "ZaMaximX2")


# ---------------------------------------------------------------------------- pedalboard side


_board = None  # one per pool process: (pedalboard.Pedalboard, [(plugin, parameter key)...])
_audio = None
_options = None


def _pool_start(
    paths: Sequence[str], parameters: Sequence[Sequence[str]], audio: np.ndarray, rate: float, block: int
) -> None:
    """Pool initializer: load this process's instances once and keep the input audio (sent once)."""
    import pedalboard

    global _board, _audio, _options
    plugins = [pedalboard.load_plugin(p) for p in paths]
    by_name = []
    for plugin, names in zip(plugins, parameters):
        keys = {parameter.name: key for key, parameter in plugin.parameters.items()}
        by_name.append([(plugin, keys[name]) for name in names])
    # ZamEQ2 is mono, the others stereo, and a Pedalboard takes one channel count: the EQ gets
    # the channels' average and feeds both, as fxgrad's host does with a mono plugin.
    _board = (plugins[0], pedalboard.Pedalboard(plugins[1:]), [pair for group in by_name for pair in group])
    _audio, _options = audio, (rate, block)


def _pool_render(theta: np.ndarray) -> np.ndarray:
    mono, board, learned = _board
    for (plugin, key), value in zip(learned, theta):
        plugin.parameters[key].raw_value = float(value)
    rate, block = _options
    equalised = mono(_audio.mean(axis=0, keepdims=True, dtype=np.float32), rate, buffer_size=block, reset=True)
    return board(np.repeat(equalised, 2, axis=0), rate, buffer_size=block, reset=True)


class PedalboardPool:
    """ST-ITO's renderer: ``pool.map`` of single renders over the population."""

    def __init__(self, processes: int, paths, parameters, audio, rate, block):
        self.pool = mp.get_context("spawn").Pool(processes, _pool_start, (paths, parameters, audio, rate, block))
        self.pool.map(_pool_render, [np.full(sum(map(len, parameters)), 0.5, np.float32)] * processes)  # warm up
        self.renders, self.render_seconds = 0, 0.0

    def render(self, thetas: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        out = np.stack(self.pool.map(_pool_render, list(thetas), chunksize=1))
        self.render_seconds += time.perf_counter() - began
        self.renders += len(thetas)
        return out

    def close(self):
        self.pool.close()
        self.pool.join()


# ---------------------------------------------------------------------------- the run


# DPF's VST3 wrapper shows host-side values (buffer size, sample rate, program) and the meters as
# parameters; switches (band on/off, listen) stay as they are. The rest are the settings.
DPF_INFORMATION = {"buffer_size", "sample_rate", "current_program"}


def is_setting(p) -> bool:
    meter = "gain_reduction" in p.id or p.id.startswith("output_") or p.id == "output_level"
    return p.automatable and not (
        p.is_bypass or p.is_toggle or p.steps or p.choices or meter or p.id in DPF_INFORMATION
    )


def material(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Stereo synthetic notes (fxgrad.data.synth), -> float32 (2, N)."""
    from fxgrad.data.synth import make_source

    audio, _ = make_source(np.random.default_rng(seed), seconds, rate, channels=2)
    return np.ascontiguousarray(audio, np.float32)


def run(args) -> Dict[str, object]:
    import fxgrad
    from fxgrad.host.batch import render_stats
    from fxgrad.match.loss import MatchLoss
    from fxgrad.match.optimise import optimise_cma

    paths = [str(VST3 / f"{name}.vst3") for name in CHAIN]
    for path in paths:
        if not Path(path).is_dir():
            raise SystemExit(f"{path} is missing: install zam-plugins (apt)")
    plugins = [fxgrad.load(p, sample_rate=args.sample_rate, block_size=args.block_size, channels=2) for p in paths]
    chain = fxgrad.Chain(
        plugins, learned=[f"{k}.{p.id}" for k, plugin in enumerate(plugins) for p in plugin.parameters if is_setting(p)]
    )
    names_by_plugin = [[] for _ in plugins]
    for qualified in chain.learned:
        index, _, parameter = qualified.partition(".")
        plugin = plugins[int(index)]
        names_by_plugin[int(index)].append(plugin.parameters[plugin.parameter_index(parameter)].name)
    P = chain.num_parameters
    audio = material(args.seconds, args.sample_rate, args.seed)
    hidden = np.random.default_rng(args.seed + 1).uniform(0.2, 0.8, P).astype(np.float32)
    reference = fxgrad.render_batch(chain, hidden, audio, args.threads)[0]
    loss = MatchLoss(reference, args.sample_rate, "aligned")
    x0 = np.asarray(chain.get_learned(), np.float32)
    print(
        f"chain {' -> '.join(p.name for p in plugins)} (VST3), {P} learned parameters; {args.seconds:g} s stereo at "
        f"{args.sample_rate} Hz, blocks of {args.block_size}; CMA-ES population {args.population}, "
        f"{args.iterations} iterations, seed {args.seed}; {args.threads} threads / processes; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )

    # The plugins' own cost: one render at a time on one thread, nothing else running.
    for k in range(2):  # warm-up
        fxgrad.render_batch(chain, np.random.default_rng(k).uniform(0, 1, P).astype(np.float32), audio, 1)
    stats_before = render_stats(chain, 1)
    for k in range(args.dsp_renders):
        fxgrad.render_batch(chain, np.random.default_rng(100 + k).uniform(0, 1, P).astype(np.float32), audio, 1)
    stats_after = render_stats(chain, 1)
    dsp_per_render = (stats_after["dsp_seconds"] - stats_before["dsp_seconds"]) / args.dsp_renders

    results: Dict[str, object] = {
        "parameters": P,
        "seconds": args.seconds,
        "population": args.population,
        "iterations": args.iterations,
        "threads": args.threads,
        "dsp_seconds_per_render": dsp_per_render,
    }

    fxgrad.render_batch(chain, np.tile(x0, (args.threads, 1)), audio, args.threads)  # instances made, warm
    fx_stats0 = render_stats(chain, args.threads)
    fx_render = {"seconds": 0.0, "renders": 0}

    def fx_evaluate(thetas):
        began = time.perf_counter()
        out = fxgrad.render_batch(chain, thetas, audio, args.threads)
        fx_render["seconds"] += time.perf_counter() - began
        fx_render["renders"] += len(thetas)
        return loss(out)

    began = time.perf_counter()
    fx = optimise_cma(
        fx_evaluate,
        x0,
        args.iterations,
        args.population,
        0.1,
        args.seed,
        progress=not args.no_progress,
        description="fxgrad",
    )
    fx_total = time.perf_counter() - began
    fx_stats = render_stats(chain, args.threads)
    dsp = fx_stats["dsp_seconds"] - fx_stats0["dsp_seconds"]
    results["fxgrad"] = {
        "s_per_iteration": fx_total / fx.iterations,
        "render_s_per_iteration": fx_render["seconds"] / fx.iterations,
        "renders_per_s": fx_render["renders"] / fx_render["seconds"],
        "best_loss": fx.loss,
        "best_by_iteration": [h["best"] for h in fx.history],
        "dsp_seconds_per_render_in_run": dsp / fx_render["renders"],
    }
    bound = args.threads / dsp_per_render
    results["dsp_bound_renders_per_s"] = bound

    if not args.no_pedalboard:
        try:
            import pedalboard  # noqa: F401
        except ImportError as error:
            raise SystemExit("pedalboard is not installed (pip install pedalboard), or pass --no-pedalboard") from error
        pool = PedalboardPool(args.threads, paths, names_by_plugin, audio, float(args.sample_rate), args.block_size)
        try:
            # pedalboard compensates the plugins' latency (ZaMaximX2 looks ahead), fxgrad's host
            # does not: each side matches its own render of the hidden setting, and the renders
            # are compared with fxgrad's shifted back by the chain's latency.
            probe = np.stack([x0, hidden])
            theirs, ours = pool.render(probe), fxgrad.render_batch(chain, probe, audio, args.threads)
            lag = chain.latency_samples
            difference = float(np.max(np.abs(theirs[..., : theirs.shape[-1] - lag] - ours[..., lag:])))
            their_loss = MatchLoss(theirs[1], args.sample_rate, "aligned")
            pool.renders, pool.render_seconds = 0, 0.0

            def pb_evaluate(thetas):
                return their_loss(pool.render(thetas))

            began = time.perf_counter()
            pb = optimise_cma(
                pb_evaluate,
                x0,
                args.iterations,
                args.population,
                0.1,
                args.seed,
                progress=not args.no_progress,
                description="pedalboard pool",
            )
            pb_total = time.perf_counter() - began
        finally:
            pool.close()
        results["pedalboard"] = {
            "s_per_iteration": pb_total / pb.iterations,
            "render_s_per_iteration": pool.render_seconds / pb.iterations,
            "renders_per_s": pool.renders / pool.render_seconds,
            "best_loss": pb.loss,
            "best_by_iteration": [h["best"] for h in pb.history],
        }
        results["max_abs_difference_of_renders"] = difference
        results["latency_samples"] = lag
    return results


def report(results: Dict[str, object]) -> str:
    fx = results["fxgrad"]
    lines = [
        "| renderer | s / iteration | rendering s / iteration | renders / s | best loss |",
        "| --- | --- | --- | --- | --- |",
    ]
    sides = [("fxgrad render_batch", fx)]
    if "pedalboard" in results:
        sides.append(("pedalboard + Pool", results["pedalboard"]))
    for label, side in sides:
        lines.append(
            f"| {label} | {side['s_per_iteration']:.3f} | {side['render_s_per_iteration']:.3f} | "
            f"{side['renders_per_s']:.1f} | {side['best_loss']:.6g} |"
        )
    bound = results["dsp_bound_renders_per_s"]
    lines.append("")
    lines.append(
        f"DSP bound: {results['threads']} threads / {results['dsp_seconds_per_render'] * 1e3:.1f} ms per render "
        f"(one thread, idle) = {bound:.1f} renders/s; fxgrad reaches {fx['renders_per_s']:.1f} "
        f"({100 * fx['renders_per_s'] / bound:.0f} % of it; DSP per render during the run "
        f"{fx['dsp_seconds_per_render_in_run'] * 1e3:.1f} ms)"
    )
    if "pedalboard" in results:
        pb = results["pedalboard"]
        lines.append(
            f"fxgrad / pedalboard pool: {pb['s_per_iteration'] / fx['s_per_iteration']:.2f}x per iteration, "
            f"{pb['render_s_per_iteration'] / fx['render_s_per_iteration']:.2f}x in rendering"
        )
        same = fx["best_by_iteration"] == pb["best_by_iteration"]
        lines.append(
            f"same seed, same losses at every iteration: {'yes' if same else 'no'} (best {fx['best_loss']:.6g} vs "
            f"{pb['best_loss']:.6g}); largest difference between the two hosts' renders of one setting "
            f"(latency of {results['latency_samples']} samples removed): {results['max_abs_difference_of_renders']:.3g}"
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length (ST-ITO: 10 s)")
    parser.add_argument("--population", type=int, default=32, help="CMA-ES population (ST-ITO: 32)")
    parser.add_argument("--iterations", type=int, default=25, help="CMA-ES iterations (ST-ITO: 25-100)")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="fxgrad threads and pedalboard processes (default: the CPUs this process may use)",
    )
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument(
        "--block-size", type=int, default=8192, help="both hosts' block (pedalboard's default buffer_size)"
    )
    parser.add_argument("--dsp-renders", type=int, default=4, help="renders timed on one thread for the DSP bound")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pedalboard", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    results = run(args)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
