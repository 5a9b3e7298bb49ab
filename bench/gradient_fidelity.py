#!/usr/bin/env python3
"""Gradient fidelity of the SPSA rack's strategies against the exact finite-difference gradient.

For each subject (the Calf Multiband Compressor, third-party, no DSP snapshot; fxgrad's own
Compressor, which carries its full DSP state) the bench renders ~10 s of generated program
material frame by frame through the rack with a smooth per-frame parameter trajectory (the same
for every strategy's centre), feeds the upstream gradient g = y - target (target: the same chain
at other fixed settings), and compares each strategy's gradient on a set of sampled frames with
the exact central-difference (Eq. 1) gradient taken from the centre's *true* state:

* fxgrad's Compressor: the rack's own ``snapshot`` strategy with the ``fd`` estimator (exact).
* Calf (no snapshot): 2P fresh clones per sampled frame, each re-rendering the whole clip from
  its start with the centre's parameter history, then the frame with one coordinate moved by
  +-eps. Expensive but exact, and independent of the rack's code.

Many perturbations per frame are drawn as many lanes fed the *same* clip and trajectory (lane m's
Delta is independent of lane m'), so one run gives both the single-draw statistics (K per lane,
default 1: variance, cosine of a single estimate) and their mean over all draws (bias, cosine of
a large-K estimate).

Run ``python bench/gradient_fidelity.py --help``; defaults finish in 3-5 minutes on 2
cores. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

import fxgrad
from fxgrad import _native

CALF_MBC = "http://calf.sourceforge.net/plugins/MultibandCompressor"


# --------------------------------------------------------------------------------------------
# Program material: a generated 120 bpm groove (kick, snare, hats, bass, chords) whose sections
# change level (verse, a quiet break, a crescendo, a loud ending) so compressors work at
# different depths. Deterministic for a seed; no files.
# --------------------------------------------------------------------------------------------


def program_material(
    seconds: float = 10.0, sample_rate: int = 22050, seed: int = 0, rms_db: float = -14.0, peak_db: float = -1.0
) -> np.ndarray:
    """A mono (1, n) float32 mix of drums, bass and chords with section dynamics."""
    from scipy.signal import butter, lfilter

    rng = np.random.default_rng(seed)
    sr = sample_rate
    n = int(round(seconds * sr))
    mix = np.zeros(n)
    beat = 0.5  # 120 bpm
    sixteenth = beat / 4

    def place(event: np.ndarray, start_s: float, gain: float) -> None:
        i = int(start_s * sr)
        if i >= n:
            return
        m = min(len(event), n - i)
        mix[i : i + m] += gain * event[:m]

    def kick() -> np.ndarray:
        t = np.arange(int(0.35 * sr)) / sr
        f = 45 + 90 * np.exp(-t / 0.03)
        phase = 2 * np.pi * np.cumsum(f) / sr
        click = np.exp(-t / 0.002) * rng.standard_normal(len(t)) * 0.3
        return np.sin(phase) * np.exp(-t / 0.12) + click

    b_snare, a_snare = butter(2, [1200 / (sr / 2), 6000 / (sr / 2)], btype="band")
    b_hat, a_hat = butter(2, 6000 / (sr / 2), btype="high")

    def snare() -> np.ndarray:
        t = np.arange(int(0.25 * sr)) / sr
        body = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.04)
        rattle = lfilter(b_snare, a_snare, rng.standard_normal(len(t))) * np.exp(-t / 0.07)
        return 0.6 * body + 1.4 * rattle

    def hat(open_: bool) -> np.ndarray:
        t = np.arange(int((0.25 if open_ else 0.06) * sr)) / sr
        return lfilter(b_hat, a_hat, rng.standard_normal(len(t))) * np.exp(-t / (0.09 if open_ else 0.015))

    def tone(freq: float, dur: float, harmonics: int, attack: float, decay: float) -> np.ndarray:
        t = np.arange(int(dur * sr)) / sr
        wave = sum(
            np.sin(2 * np.pi * freq * h * t + rng.uniform(0, 2 * np.pi)) / h**1.3 for h in range(1, harmonics + 1)
        )
        env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
        release = np.minimum(1.0, (dur - t) / 0.01)
        return wave * env * release

    roots = [55.0, 43.65, 48.99, 41.2]  # A1, F1, G1, E1: one per bar, cycling
    chords = [(0, 3, 7), (0, 4, 7), (0, 4, 7), (0, 3, 7)]
    bars = int(np.ceil(seconds / (4 * beat)))
    for bar in range(bars):
        t0 = bar * 4 * beat
        root = roots[bar % 4]
        for s in range(16):
            at = t0 + s * sixteenth
            vel = rng.uniform(0.75, 1.0)
            if s in (0, 8) or (s == 10 and bar % 2 == 1) or (s == 7 and rng.random() < 0.3):
                place(kick(), at, 0.9 * vel)
            if s in (4, 12):
                place(snare(), at, 0.55 * vel)
            if s % 2 == 0:
                place(hat(open_=(s == 14)), at, (0.45 if s % 4 == 0 else 0.3) * vel)
            if s % 2 == 0 and rng.random() < 0.85:
                semis = rng.choice([0, 0, 0, 7, 12])
                place(tone(root * 2 ** (semis / 12), sixteenth * 1.9, 8, 0.004, 0.25), at, 0.45 * vel)
            if s % 4 == 2:
                place(
                    tone(880.0 * 2 ** (rng.choice([0, 3, 7, 10, 12]) / 12), sixteenth * 1.5, 5, 0.003, 0.08),
                    at,
                    0.12 * vel,
                )
        for semis in chords[bar % 4]:
            place(tone(220.0 * (root / 55.0) * 2 ** (semis / 12), 4 * beat, 6, 0.08, 2.5), t0, 0.16)

    # Section dynamics: verse, a quiet break, a crescendo, a loud ending (smoothed steps).
    t = np.arange(n) / seconds / sr
    level_db = np.interp(
        t, [0.0, 0.3, 0.32, 0.5, 0.52, 0.8, 0.82, 1.0], [-3.0, -3.0, -10.0, -10.0, -8.0, 0.0, 0.0, 0.0]
    )
    mix *= 10 ** (level_db / 20)
    # Loudness like a finished mix: scale to rms_db, then soft-clip the peaks below peak_db.
    mix *= 10 ** (rms_db / 20) / np.sqrt(np.mean(mix**2))
    ceiling = 10 ** (peak_db / 20)
    mix = ceiling * np.tanh(mix / ceiling)
    return mix.astype(np.float32)[None]


def smooth_trajectory(
    frames: int, parameters: int, frame_seconds: float, rng: np.random.Generator, low=0.2, high=0.8
) -> np.ndarray:
    """(frames, parameters) of slow random sinusoids (0.05-0.3 Hz, two partials) in [low, high]
    (scalars or per-parameter arrays)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    t = np.arange(frames)[:, None] * frame_seconds
    f1 = rng.uniform(0.05, 0.3, parameters)
    f2 = rng.uniform(0.05, 0.3, parameters)
    p1 = rng.uniform(0, 2 * np.pi, parameters)
    p2 = rng.uniform(0, 2 * np.pi, parameters)
    wave = 0.7 * np.sin(2 * np.pi * f1 * t + p1) + 0.3 * np.sin(2 * np.pi * f2 * t + p2)  # in [-1, 1]
    return (0.5 * (low + high) + 0.5 * (high - low) * wave).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------


@dataclass
class Subject:
    name: str
    chain: object
    has_snapshot: bool
    configs: List[Tuple[str, str]]  # (strategy, estimator)
    low: object = 0.2  # the trajectory's range, normalised (scalar or per parameter)
    high: object = 0.8


def calf_subject(sr: int, block: int, learn: str) -> Subject:
    plugin = fxgrad.load(CALF_MBC, sample_rate=sr, block_size=block, channels=1)
    bands = range(4)
    names = {
        "thr-ratio": [f"threshold{b}" for b in bands] + [f"ratio{b}" for b in bands],
        "thr-ratio-release": [f"{k}{b}" for k in ("threshold", "ratio", "release") for b in bands],
        "thr-ratio-times": [f"{k}{b}" for k in ("threshold", "ratio", "attack", "release") for b in bands],
        "thr-ratio-makeup": [f"{k}{b}" for k in ("threshold", "ratio", "makeup") for b in bands],
    }[learn]
    pinned = {f"bypass{b}": 0.0 for b in range(4)}
    chain = fxgrad.Chain([plugin], learned=names, pinned=pinned)
    # Calf's thresholds are linear gains over 0.001..1: normalised 0.015..0.25 is -36..-12 dBFS, where
    # a mix's bands sit; ratios 0.1..0.45 are 2.9:1..9.6:1; makeups 0..0.1 are 0..+16 dB; attack and
    # release are logarithmic over 0.01..2000 ms: 0.6..0.8 is 15..180 ms, 0.75..0.9 is 100..600 ms.
    ranges = {
        "threshold": (0.015, 0.25),
        "ratio": (0.1, 0.45),
        "makeup": (0.0, 0.1),
        "attack": (0.6, 0.8),
        "release": (0.75, 0.9),
    }
    low = [ranges[n.rstrip("0123")][0] for n in names]
    high = [ranges[n.rstrip("0123")][1] for n in names]
    return Subject(
        "Calf Multiband Compressor",
        chain,
        False,
        [("lockstep", "two-sided"), ("replay", "two-sided"), ("replay", "one-sided")],
        low,
        high,
    )


def own_compressor_subject(sr: int, block: int) -> Subject:
    plugin = fxgrad.load("fxgrad:Compressor", sample_rate=sr, block_size=block, channels=1)
    chain = fxgrad.Chain([plugin])  # every automatable, non-bypass parameter
    # Linear ranges: threshold -60..0 dB, ratio 1..20, attack 0.1..200 ms, release 5..2000 ms,
    # knee 0..24 dB, makeup 0..24 dB. The trajectory keeps to musical settings.
    ranges = {
        "threshold_db": (0.55, 0.85),
        "ratio": (0.1, 0.45),
        "attack_ms": (0.02, 0.25),
        "release_ms": (0.02, 0.25),
        "knee_db": (0.1, 0.5),
        "makeup_db": (0.05, 0.3),
    }
    ids = [name.split(".", 1)[1] for name in chain.learned]
    low = [ranges.get(i, (0.2, 0.8))[0] for i in ids]
    high = [ranges.get(i, (0.2, 0.8))[1] for i in ids]
    return Subject(
        "fxgrad Compressor",
        chain,
        True,
        [
            ("lockstep", "two-sided"),
            ("replay", "two-sided"),
            ("replay", "one-sided"),
            ("snapshot", "two-sided"),
            ("snapshot", "one-sided"),
        ],
        low,
        high,
    )


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------


def frame_of(audio: np.ndarray, f: int, n: int) -> np.ndarray:
    return np.ascontiguousarray(audio[:, f * n : (f + 1) * n])


def render_trajectory(
    chain,
    x: np.ndarray,
    thetas: np.ndarray,
    n: int,
    upto: Optional[int] = None,
    last_theta: Optional[np.ndarray] = None,
) -> Tuple[object, np.ndarray]:
    """A fresh clone of ``chain`` renders frames 0..upto-1 with ``thetas``, then frame ``upto``
    with ``last_theta`` (if given). Returns (clone, output of the last frame rendered)."""
    clone = chain.clone()
    frames = thetas.shape[0] if upto is None else upto
    out = None
    for f in range(frames):
        clone.set_learned(thetas[f])
        out = clone.process(frame_of(x, f, n))
    if last_theta is not None:
        clone.set_learned(np.ascontiguousarray(last_theta, dtype=np.float32))
        out = clone.process(frame_of(x, frames, n))
    return clone, out


def exact_fd_by_rerender(
    chain, x, thetas, upstream, n, eval_frames, eps, threads
) -> Tuple[Dict[int, np.ndarray], int, float]:
    """Eq. 1 from the centre's true state via fresh clones that re-render the whole history:
    2P renders-from-start per frame. Returns ({frame: grad (P,)}, frame renders, seconds)."""
    P = thetas.shape[1]
    jobs = []
    for f in eval_frames:
        for i in range(P):
            for sign in (+1.0, -1.0):
                jobs.append((f, i, sign))

    def run(job):
        f, i, sign = job
        theta = thetas[f].astype(np.float64).copy()
        theta[i] = min(1.0, max(0.0, theta[i] + sign * eps))
        theta = theta.astype(np.float32)
        _, out = render_trajectory(chain, x, thetas, n, upto=f, last_theta=theta)
        return (
            job,
            float(np.dot(upstream[f].ravel().astype(np.float64), out.ravel().astype(np.float64))),
            float(theta[i]),
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # process() releases the GIL
        results = list(pool.map(run, jobs))
    seconds = time.perf_counter() - start
    dots, moved = {}, {}
    for (f, i, sign), d, value in results:
        dots[(f, i, sign)] = d
        moved[(f, i, sign)] = value
    grads = {}
    for f in eval_frames:
        g = np.zeros(P)
        for i in range(P):
            g[i] = (dots[(f, i, 1.0)] - dots[(f, i, -1.0)]) / (moved[(f, i, 1.0)] - moved[(f, i, -1.0)])
        grads[f] = g
    renders = sum(f + 1 for f, _, _ in jobs)
    return grads, renders, seconds


def run_rack(
    chain,
    strategy,
    estimator,
    lanes,
    K,
    eps,
    replay_samples,
    threads,
    seed,
    x,
    thetas,
    upstream,
    n,
    eval_frames,
    centre_out=None,
    paired=True,
):
    """Streams the clip through a rack (every lane the same clip and trajectory). Returns
    ({frame: (lanes, P) gradients}, {frame: (lanes, P) perturbation signs (k=0)}, info)."""
    F, P = thetas.shape
    rack = _native.Rack(chain, lanes, eps, K, strategy, estimator, int(replay_samples), threads, seed)
    wanted = set(eval_frames)
    every_frame = strategy == "lockstep"  # lockstep evaluators must see every frame, as in DeepAFx
    grads, deltas = {}, {}
    step_renders, step_wall = [], []
    centre_error = 0.0
    start = time.perf_counter()
    for f in range(F):
        theta = np.ascontiguousarray(np.broadcast_to(thetas[f], (lanes, P)), dtype=np.float32)
        xf = np.ascontiguousarray(np.broadcast_to(frame_of(x, f, n)[None], (lanes, 1, n)))
        record = every_frame or f in wanted
        if paired:
            rack.step = f  # the same Delta for a frame in every strategy: paired comparisons
        y = rack.forward(theta, xf, record)
        if centre_out is not None:
            centre_error = max(centre_error, float(np.max(np.abs(y - centre_out[f][None]))))
        if record:
            g = np.ascontiguousarray(np.broadcast_to(upstream[f][None], (lanes, 1, n)))
            if f in wanted and estimator != "fd":
                deltas[f] = np.array([rack.perturbation(m, 0) for m in range(lanes)], np.float64)
            before = rack.stats()
            grad = rack.vjp(g)
            after = rack.stats()
            if f in wanted:
                grads[f] = grad.astype(np.float64)
                step_renders.append((after["evaluations"] - before["evaluations"]) / lanes)
                step_wall.append(after["wall_seconds"] - before["wall_seconds"])
    total = time.perf_counter() - start
    info = dict(
        renders_per_step=float(np.mean(step_renders)),
        wall_per_step=float(np.mean(step_wall)),
        total_seconds=total,
        centre_error=centre_error,
        evaluators=rack.evaluators_per_lane,
    )
    return grads, deltas, info


@dataclass
class Scores:
    cos_mean: List[float] = field(default_factory=list)  # cosine of the mean over all draws
    cos_single: List[float] = field(default_factory=list)  # mean cosine of one lane's estimate
    rel_error: List[float] = field(default_factory=list)  # ||mean - fd|| / ||fd||
    rel_std: List[float] = field(default_factory=list)  # one lane's spread (trace) / ||fd||
    bias: List[float] = field(default_factory=list)  # strategy/estimator bias / ||fd|| (K=1)
    dir_err: List[float] = field(default_factory=list)  # per-draw directional-derivative error (K=1)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def score(
    grads: Dict[int, np.ndarray],
    deltas: Dict[int, np.ndarray],
    reference: Dict[int, np.ndarray],
    frames: Sequence[int],
    K: int,
) -> Scores:
    """With K=1 a lane's estimate is Delta * d, d its measured directional derivative
    ((f(theta+eps Delta) - f(theta-eps Delta)) / 2 eps, or the one-sided quotient); the exact one is
    Delta . r. Their difference isolates what the strategy (start state) and the estimator
    (curvature) add, free of SPSA's own cross-coordinate noise (Delta Delta^T - I) r."""
    s = Scores()
    for f in frames:
        G, r = grads[f], reference[f]
        L = G.shape[0]
        mean = G.mean(axis=0)
        rn = np.linalg.norm(r)
        s.cos_mean.append(cosine(mean, r))
        s.cos_single.append(float(np.mean([cosine(g, r) for g in G])))
        s.rel_error.append(float(np.linalg.norm(mean - r) / rn))
        s.rel_std.append(float(np.sqrt(np.sum(G.var(axis=0, ddof=1))) / rn) if L > 1 else float("nan"))
        if K == 1 and f in deltas:
            D = deltas[f]
            measured = (G * D).mean(axis=1)  # d_l (G = D * d_l exactly, away from the edges)
            exact = D @ r  # Delta_l . r
            s.dir_err.append(float(np.sqrt(np.mean((measured - exact) ** 2) / np.mean(exact**2))))
            s.bias.append(float(np.linalg.norm((D * (measured - exact)[:, None]).mean(axis=0)) / rn))
    return s


def ideal_scores(reference, frames, lanes, rng, deltas=None) -> Scores:
    """SPSA from the exact state with an exactly linear f: the noise floor of L Rademacher draws
    (the racks' own draws where given)."""
    s = Scores()
    P = len(next(iter(reference.values())))
    for f in frames:
        r = reference[f]
        D = deltas[f] if deltas and f in deltas else rng.choice([-1.0, 1.0], size=(lanes, P))
        G = D * (D @ r)[:, None]
        mean = G.mean(axis=0)
        s.cos_mean.append(cosine(mean, r))
        s.cos_single.append(float(np.mean([cosine(g, r) for g in G])))
        s.rel_error.append(float(np.linalg.norm(mean - r) / np.linalg.norm(r)))
        s.rel_std.append(float(np.sqrt(np.sum(G.var(axis=0, ddof=1))) / np.linalg.norm(r)))
        s.bias.append(0.0)
        s.dir_err.append(0.0)
    return s


# --------------------------------------------------------------------------------------------


def evaluate(subject: Subject, args, x: np.ndarray, rng: np.random.Generator) -> None:
    chain = subject.chain
    sr, n = args.sample_rate, args.frame
    F = x.shape[1] // n
    x = np.ascontiguousarray(x[:, : F * n])
    P = chain.num_parameters
    thetas = smooth_trajectory(F, P, n / sr, rng, subject.low, subject.high)
    low, high = np.broadcast_to(subject.low, P), np.broadcast_to(subject.high, P)
    target_theta = (low + (high - low) * rng.uniform(0.1, 0.9, P)).astype(np.float32)
    target_chain = chain.clone()
    target_chain.set_learned(target_theta)
    target = target_chain.process(x)

    # The centre's true outputs (a fresh clone following the trajectory) and the upstream gradient.
    true_chain = chain.clone()
    centre = []
    for f in range(F):
        true_chain.set_learned(thetas[f])
        centre.append(true_chain.process(frame_of(x, f, n)))
    centre = np.stack(centre)  # (F, 1, n)
    upstream = (centre - np.stack([frame_of(target, f, n) for f in range(F)])).astype(np.float32)

    lanes, K = args.lanes, args.perturbations
    first = min(F - 1, max(1, int(round(args.skip_seconds * sr / n))))
    candidates = np.unique(np.linspace(first, F - 1, args.eval_frames).round().astype(int)).tolist()

    print(f"\n=== {subject.name}: P={P} learned ({', '.join(c.split('.', 1)[-1] for c in chain.learned)})")
    print(
        f"    {x.shape[1] / sr:.1f} s at {sr} Hz, {F} frames of {n}, block {chain.block_size}; "
        f"{len(candidates)} frames evaluated; {lanes} lanes x K={K} = {lanes * K} Delta draws per frame; "
        f"eps={args.eps}; replay history {', '.join(f'{r:g}' for r in args.replay_seconds)} s; {args.threads} threads"
    )

    # Exact reference.
    t0 = time.perf_counter()
    if subject.has_snapshot:
        ref_grads, _, ref_info = run_rack(
            chain,
            "snapshot",
            "fd",
            1,
            1,
            args.eps,
            0,
            args.threads,
            args.seed,
            x,
            thetas,
            upstream,
            n,
            candidates,
            centre_out=centre,
        )
        reference = {f: g[0] for f, g in ref_grads.items()}
        ref_desc = (
            f"snapshot + fd (exact): {ref_info['renders_per_step']:.0f} renders/step, "
            f"{ref_info['wall_per_step'] * 1e3:.2f} ms/step"
        )
        if ref_info["centre_error"] > 0:
            print(f"    NOTE: rack centre differs from a fresh clone by {ref_info['centre_error']:.3g} (max abs)")
    else:
        reference, renders, seconds = exact_fd_by_rerender(
            chain, x, thetas, upstream, n, candidates, args.eps, args.threads
        )
        ref_desc = (
            f"fresh clones re-rendering the history (exact): {renders / len(candidates):.0f} renders/step on average "
            f"(2P x frames so far), {seconds / len(candidates) * 1e3:.0f} ms/step ({args.threads} threads)"
        )
    norms = {f: float(np.linalg.norm(reference[f])) for f in candidates}
    typical = np.median(list(norms.values()))
    frames = [f for f in candidates if norms[f] > args.min_norm * typical]
    skipped = len(candidates) - len(frames)
    print(f"    reference: {ref_desc} [{time.perf_counter() - t0:.1f} s]")
    if skipped:
        at = ", ".join(f"{f * n / sr:.2f}" for f in candidates if f not in frames)
        print(
            f"    {skipped} sampled frame(s) skipped (at {at} s): |FD gradient| < {args.min_norm:g} x median "
            "(nothing compressing: nothing to compare)"
        )

    configs = []
    for st, es in subject.configs:
        if st not in args.strategies:
            continue
        if st == "replay":
            for seconds in args.replay_seconds:
                label = "replay" if len(args.replay_seconds) == 1 else f"replay {seconds:g}s"
                configs.append((st, es, int(round(seconds * sr)), label))
        else:
            configs.append((st, es, 0, st))
    if args.full_replay and "replay" in args.strategies:
        configs += [("replay", es, F * n, "replay-all") for es in ("two-sided", "one-sided")]
    rows, ideal_deltas = [], None
    for strategy, estimator, history, label in configs:
        grads, deltas, info = run_rack(
            chain,
            strategy,
            estimator,
            lanes,
            K,
            args.eps,
            history,
            args.threads,
            args.seed + 1,
            x,
            thetas,
            upstream,
            n,
            frames,
            centre_out=centre,
        )
        ideal_deltas = ideal_deltas or deltas
        rows.append((label, estimator, score(grads, deltas, reference, frames, K), info))
        if info["centre_error"] > 0:
            print(
                f"    NOTE: {label}/{estimator}: rack centre differs from a fresh clone by {info['centre_error']:.3g}"
            )
    rows.insert(
        0,
        (
            "ideal",
            "exact-lin",
            ideal_scores(
                reference, frames, lanes * K, np.random.default_rng(args.seed + 7), ideal_deltas if K == 1 else None
            ),
            None,
        ),
    )

    draws = lanes * K
    head = (
        f"    {'strategy':<12} {'estimator':<9} | {'cos(mean of ' + str(draws) + ')':>16} {'min':>6} | "
        f"{'cos(K=' + str(K) + ')':>8} | {'|mean-FD|':>9} {'bias':>6} {'std(K=' + str(K) + ')':>8} | "
        f"{'dir.err':>7} | {'renders/step':>12} {'ms/step':>8} {'run s':>6}"
    )
    print(head)
    print("    " + "-" * (len(head) - 4))

    def fmt(values, spec):
        return (
            format(float(np.mean(values)), spec) if len(values) else format("-", spec.split(".")[0].rstrip("f") + "s")
        )

    for label, estimator, sc, info in rows:
        cost = (
            f"{info['renders_per_step']:12.1f} {info['wall_per_step'] * 1e3 / lanes:8.3f} {info['total_seconds']:6.1f}"
            if info
            else f"{'-':>12} {'-':>8} {'-':>6}"
        )
        print(
            f"    {label:<12} {estimator:<9} | {np.mean(sc.cos_mean):16.4f} {np.min(sc.cos_mean):6.3f} | "
            f"{np.mean(sc.cos_single):8.4f} | {np.mean(sc.rel_error):9.3f} {fmt(sc.bias, '6.4f')} "
            f"{np.mean(sc.rel_std):8.3f} | "
            f"{fmt(sc.dir_err, '7.4f')} | {cost}"
        )
    print(f"""    Means over the evaluated frames (min: the worst frame). All errors are relative to |FD gradient|.
    cos(mean of {draws}): cosine between the mean of all {draws} draws and the exact FD gradient;
    cos(K={K}): one lane's estimate.
    |mean-FD|: error of that mean (SPSA sampling noise + bias); std(K={K}): one lane's spread
    (SPSA's own variance dominates).
    bias: |mean_l Delta_l (d_l - Delta_l.r)|, the error the strategy/estimator adds in expectation, free of SPSA's
    cross-coordinate noise (d_l: the lane's measured directional derivative, r: FD gradient); dir.err: rms(d - Delta.r)
    / rms(Delta.r) per draw (start-state error + curvature). 'ideal': SPSA from the exact state on a linear f
    (the floor). renders/step: frames rendered per lane per gradient step (evaluations + replayed history);
    ms/step: vjp wall time per lane ({args.threads} threads); run s: the whole clip (lockstep evaluators must
    render every frame, replay/snapshot only the evaluated ones).""")

    by = {(lb, es): sc for lb, es, sc, info in rows if info}
    lock = by.get(("lockstep", "two-sided"))
    if lock is not None:
        for key in sorted(by):
            if key == ("lockstep", "two-sided"):
                continue
            other = by[key]
            d_mean = np.mean(other.cos_mean) - np.mean(lock.cos_mean)
            d_min = np.min(other.cos_mean) - np.min(lock.cos_mean)
            err_ratio = np.mean(lock.rel_error) / max(np.mean(other.rel_error), 1e-12)
            line = (
                f"    {key[0]}/{key[1]} vs lockstep: cos(mean) {d_mean:+.4f} (worst frame {d_min:+.4f}), "
                f"|mean-FD| {err_ratio:.2f}x smaller"
            )
            if lock.dir_err and other.dir_err:
                line += (
                    f", dir.err {np.mean(other.dir_err):.4f} vs {np.mean(lock.dir_err):.4f}, "
                    f"bias {np.mean(other.bias):.4f} vs {np.mean(lock.bias):.4f}"
                )
                verdict = (
                    "BEATS lockstep"
                    if np.mean(other.dir_err) < np.mean(lock.dir_err) and d_mean > 0
                    else (
                        "beats lockstep on dir.err only"
                        if np.mean(other.dir_err) < np.mean(lock.dir_err)
                        else "DOES NOT beat lockstep"
                    )
                )
            else:
                verdict = "BEATS lockstep" if d_mean > 0 else "DOES NOT beat lockstep"
            print(line + f": {verdict}")
    for strategy in sorted({lb for lb, _ in by}):
        two, one = by.get((strategy, "two-sided")), by.get((strategy, "one-sided"))
        if two is not None and one is not None:
            print(
                f"    {strategy}: one-sided vs two-sided: bias {fmt(one.bias, '.3f')} vs {fmt(two.bias, '.3f')}, "
                f"|mean-FD| {np.mean(one.rel_error):.3f} vs {np.mean(two.rel_error):.3f}, "
                f"std(K={K}) {np.mean(one.rel_std):.3f} vs {np.mean(two.rel_std):.3f}, "
                f"cos(K={K}) {np.mean(one.cos_single):.4f} vs {np.mean(two.cos_single):.4f} "
                "(one-sided: half the renders)"
            )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--subjects", default="calf,own", help="comma list of: calf, own (fxgrad's Compressor)")
    p.add_argument("--strategies", default="lockstep,replay,snapshot")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the program material")
    p.add_argument("--sample-rate", type=int, default=22050)
    p.add_argument("--frame", type=int, default=1024, help="N: samples per frame (one theta per frame)")
    p.add_argument("--block", type=int, default=256, help="the plugins' block size")
    p.add_argument("--lanes", type=int, default=128, help="lanes fed the same clip: independent Delta draws")
    p.add_argument("--perturbations", type=int, default=1, help="K per lane (the single-draw statistics use K)")
    p.add_argument("--eval-frames", type=int, default=20, help="frames sampled across the clip for comparison")
    p.add_argument("--skip-seconds", type=float, default=0.5, help="first evaluated frame after this much audio")
    p.add_argument("--eps", type=float, default=0.01)
    p.add_argument(
        "--replay-seconds", default="0.25,1", help="replay history R, seconds (comma list; 0.25: the layer's default)"
    )
    p.add_argument(
        "--full-replay",
        action="store_true",
        help="also run replay with the whole clip as history ('replay-all': exact, expensive)",
    )
    p.add_argument(
        "--calf-learn",
        default="thr-ratio-release",
        choices=["thr-ratio", "thr-ratio-release", "thr-ratio-times", "thr-ratio-makeup"],
        help="Calf parameters learned (bands 0..3 each); thresholds/ratios alone do not touch Calf's "
        "state (its detector is feed-forward), so lockstep is exact for them",
    )
    p.add_argument("--min-norm", type=float, default=0.02, help="skip frames whose FD gradient is below this x median")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.strategies = set(args.strategies.split(","))
    args.replay_seconds = [float(v) for v in str(args.replay_seconds).split(",")]

    x = program_material(args.seconds, args.sample_rate, seed=args.seed)
    rms = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    print(
        f"gradient fidelity: {os.cpu_count()} cores, {args.threads} threads; program material {args.seconds:g} s, "
        f"peak {20 * np.log10(np.max(np.abs(x))):.1f} dBFS, RMS {rms:.1f} dBFS"
    )
    for name in args.subjects.split(","):
        rng = np.random.default_rng(args.seed + 100)
        if name == "calf":
            subject = calf_subject(args.sample_rate, args.block, args.calf_learn)
        elif name == "own":
            try:
                subject = own_compressor_subject(args.sample_rate, args.block)
            except FileNotFoundError as e:
                print(f"\n=== fxgrad Compressor: SKIPPED ({e})")
                continue
        else:
            p.error(f"unknown subject {name!r}")
        evaluate(subject, args, x, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
