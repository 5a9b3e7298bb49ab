"""Searching a chain's settings without a model: the objective over a population of settings
(renders, then one batched loss), the search's bookkeeping (best so far, renders, a render
budget, progress), CMA-ES runs on it, and ``fxgrad fit-static``'s SPSA on aligned pairs."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # the loss needs torch, which fxgrad's host commands never import
    from .loss import MatchLoss

PROGRESS_SECONDS = 10.0
"""Where stdout is not a terminal, a progress line at most this often."""


class Objective:
    """The mean match loss over one or more (input, loss) pairs, for a population of settings.

    Calling it with thetas (K, P) in [0, 1] renders every input K times through the chain
    (:func:`fxgrad.render_batch`, at most ``max_bytes`` of output at once), then computes the
    K losses of each group in one batched call, and returns (K,) mean losses. ``renders``,
    ``render_seconds`` and ``loss_seconds`` count the work so far.
    """

    def __init__(
        self,
        chain,
        inputs: Sequence[np.ndarray],
        losses: Sequence[MatchLoss],
        threads: Optional[int] = None,
        max_bytes: int = 256 << 20,
    ):
        if len(inputs) != len(losses) or not inputs:
            raise ValueError("an objective needs one loss per input, and at least one input")
        self.chain, self.inputs = chain, [np.ascontiguousarray(x, np.float32) for x in inputs]
        self.losses = list(losses)
        self.threads, self.max_bytes = threads, int(max_bytes)
        self.renders, self.render_seconds, self.loss_seconds = 0, 0.0, 0.0

    def __call__(self, thetas: np.ndarray) -> np.ndarray:
        from ..host.batch import render_batch

        thetas = np.clip(np.asarray(thetas, np.float32), 0.0, 1.0)
        total = np.zeros(len(thetas))
        for audio, loss in zip(self.inputs, self.losses):
            group = max(1, min(len(thetas), self.max_bytes // max(1, audio.nbytes)))
            for start in range(0, len(thetas), group):
                began = time.perf_counter()
                rendered = render_batch(self.chain, thetas[start : start + group], audio, self.threads)
                middle = time.perf_counter()
                total[start : start + group] += loss(rendered)
                self.render_seconds += middle - began
                self.loss_seconds += time.perf_counter() - middle
                self.renders += len(rendered)
        return total / len(self.inputs)


@dataclass
class Progress:
    """Progress of a search: a line rewritten in place on a terminal, else a plain line at most
    every PROGRESS_SECONDS (and at each new stage), so that a log shows the search moving."""

    enabled: bool = True
    description: str = "match"
    stream: Any = None
    _last: float = -math.inf
    _stage: str = ""

    def __post_init__(self):
        self.stream = self.stream or sys.stdout
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, stage: str, renders: int, best: float, seconds: float, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.terminal or final or stage != self._stage or now - self._last >= PROGRESS_SECONDS:
            line = f"{self.description}: {stage}, {renders} renders, best loss {best:.5g}, {seconds:.1f} s"
            end = "\r" if self.terminal and not final else "\n"
            self.stream.write(("\x1b[2K" if self.terminal else "") + line + end)
            self.stream.flush()
            self._last, self._stage = now, stage


class Search:
    """The objective as a search sees it: the best setting so far, the renders spent, the best
    loss after every call (``history``), a render budget and the progress display.

    Calling it with thetas (K, P) returns the (K,) losses; ``exhausted`` turns true once
    ``max_renders`` are spent (a search stops at its next check)."""

    def __init__(
        self,
        evaluate: Callable[[np.ndarray], np.ndarray],
        parameters: int,
        max_renders: Optional[int] = None,
        progress: Optional[Progress] = None,
    ):
        self.evaluate, self.parameters = evaluate, int(parameters)
        self.max_renders = None if max_renders is None else int(max_renders)
        self.progress = progress or Progress(enabled=False)
        self.renders, self.best_loss = 0, math.inf
        self.best_theta = np.full(self.parameters, 0.5)
        self.history: List[Dict[str, Any]] = []
        self.stage = "start"
        self.began = time.perf_counter()

    @property
    def exhausted(self) -> bool:
        return self.max_renders is not None and self.renders >= self.max_renders

    def __call__(self, thetas: np.ndarray) -> np.ndarray:
        thetas = np.clip(np.asarray(thetas, np.float64).reshape(-1, self.parameters), 0.0, 1.0)
        losses = np.asarray(self.evaluate(thetas.astype(np.float32)), np.float64)
        if losses.shape != (len(thetas),) or not np.isfinite(losses).all():
            raise RuntimeError("the loss is NaN or infinite for some settings")
        self.renders += len(thetas)
        k = int(np.argmin(losses))
        if losses[k] < self.best_loss:
            self.best_loss, self.best_theta = float(losses[k]), thetas[k].copy()
        seconds = time.perf_counter() - self.began
        self.history.append(
            {
                "stage": self.stage,
                "renders": self.renders,
                "best": self.best_loss,
                "median": float(np.median(losses)),
                "seconds": seconds,
            }
        )
        self.progress.update(self.stage, self.renders, self.best_loss, seconds)
        return losses


def inset(theta: Sequence[float], margin: float) -> np.ndarray:
    """``theta`` moved at least ``margin`` inside [0, 1]: CMA-ES's bound handling barely moves a
    coordinate that starts on a bound (a drive at 0 stays at 0)."""
    return np.clip(np.asarray(theta, np.float64), margin, 1.0 - margin)


def latin_hypercube(rng: np.random.Generator, count: int, dimensions: int) -> np.ndarray:
    """(count, dimensions) points in [0, 1): one in each of ``count`` equal slices of every axis."""
    slices = np.stack([rng.permutation(count) for _ in range(dimensions)], axis=1)
    return (slices + rng.uniform(0, 1, (count, dimensions))) / count


@dataclass
class Plateau:
    """Stop a run once its best loss has improved by less than ``relative`` of the best over the
    last ``generations`` generations (default: cma's own history window for its ``tolfunhist``,
    10 + 30 P / population), of ``floor`` x the run's first best where that is larger (an exact
    match's loss shrinks towards 0 without end)."""

    generations: Optional[int] = None
    relative: float = 1e-3
    floor: float = 0.1

    def window(self, parameters: int, population: int) -> int:
        return self.generations or 10 + math.ceil(30 * parameters / population)

    def reached(self, bests: Sequence[float], generations: int) -> bool:
        if len(bests) <= generations:
            return False
        then, now = bests[-1 - generations], bests[-1]
        return then - now <= self.relative * max(abs(now), self.floor * abs(bests[0]))


class CmaRun:
    """One CMA-ES run (``cma`` package, bounds [0, 1]) from ``x0``, driven from outside: ``ask``
    a generation of ``population`` settings, ``tell`` their losses; ``stopped`` says why it
    should stop (cma's own stop, ``iterations`` generations, a ``plateau``) or None.
    Deterministic for a seed."""

    def __init__(
        self,
        x0: Sequence[float],
        sigma: float,
        population: int,
        seed: int,
        iterations: Optional[int] = None,
        plateau: Optional[Plateau] = None,
    ):
        import cma

        if population < 2 or not 0 < sigma < 1:
            raise ValueError(f"CMA-ES needs a population >= 2 and 0 < sigma < 1; got {population}, {sigma}")
        if len(x0) < 2:
            raise ValueError("CMA-ES needs at least two parameters; use --method spsa for one")
        # cma takes seed 0 for "from the clock"; ours start at 0.
        options = {"popsize": int(population), "bounds": [0.0, 1.0], "seed": int(seed) + 1, "verbose": -9}
        saved = np.random.get_state()
        self.strategy = cma.CMAEvolutionStrategy(list(np.clip(np.asarray(x0, np.float64), 0, 1)), sigma, options)
        # cma draws from NumPy's global generator (which its seed option sets): each run keeps its
        # own stream, so that runs side by side sample as each would alone.
        self._random_state = np.random.get_state()
        np.random.set_state(saved)
        self.population, self.iterations, self.plateau = int(population), iterations, plateau
        self.window = plateau.window(len(x0), population) if plateau is not None else 0
        self.bests: List[float] = []
        self.best_theta = np.clip(np.asarray(x0, np.float64), 0, 1)

    @property
    def best(self) -> float:
        return self.bests[-1] if self.bests else math.inf

    def _own_random_state(self, work: Callable[[], Any]) -> Any:
        saved = np.random.get_state()
        np.random.set_state(self._random_state)
        try:
            return work()
        finally:
            self._random_state = np.random.get_state()
            np.random.set_state(saved)

    def ask(self) -> np.ndarray:
        candidates = self._own_random_state(self.strategy.ask)
        return np.stack([np.clip(np.asarray(c, np.float64), 0.0, 1.0) for c in candidates])

    def tell(self, candidates: np.ndarray, losses: np.ndarray) -> None:
        self._own_random_state(lambda: self.strategy.tell(list(candidates), [float(v) for v in losses]))
        k = int(np.argmin(losses))
        if losses[k] < self.best:
            self.best_theta = candidates[k].copy()
        self.bests.append(min(self.best, float(losses[k])))

    def stopped(self) -> Optional[str]:
        if self.strategy.stop():
            return "converged (cma: " + ", ".join(self.strategy.stop()) + ")"
        if self.iterations is not None and len(self.bests) >= self.iterations:
            return f"{self.iterations} iterations"
        if self.plateau is not None and self.plateau.reached(self.bests, self.window):
            return f"plateau ({self.window} generations under {self.plateau.relative:g} relative gain)"
        return None


def cma_run(
    search: Search,
    x0: Sequence[float],
    sigma: float,
    population: int,
    seed: int,
    iterations: Optional[int] = None,
    plateau: Optional[Plateau] = None,
) -> Tuple[str, float]:
    """One :class:`CmaRun` on ``search``, each generation one call of the search, until it
    stops or the search's render budget is spent. Returns why it stopped and its best loss."""
    run = CmaRun(x0, sigma, population, seed, iterations, plateau)
    while True:
        candidates = run.ask()
        run.tell(candidates, search(candidates))
        why = run.stopped() or ("render budget spent" if search.exhausted else None)
        if why:
            return why, run.best


def one_generation(search: Search, runs: Sequence[CmaRun]) -> List[int]:
    """One generation of each of ``runs``, all their settings in one call of ``search`` (so that
    the renderer's threads fill up); returns how many settings each run rendered."""
    batches = [run.ask() for run in runs]
    losses = search(np.concatenate(batches))
    offset = 0
    for run, batch in zip(runs, batches):
        run.tell(batch, losses[offset : offset + len(batch)])
        offset += len(batch)
    return [len(batch) for batch in batches]


def cma_race(
    search: Search,
    starts: Sequence[np.ndarray],
    sigma: float,
    population: int,
    seed: int,
    rounds: int,
    plateau: Optional[Plateau] = None,
) -> List[str]:
    """CMA-ES runs from every start at once (one call of the search per generation, all runs'
    settings together: the renderer's threads fill up), the worse half of them dropped every
    ``rounds`` generations until one is left, which goes on until it stops. Returns notes."""
    runs = [CmaRun(x0, sigma, population, seed + k, None, plateau) for k, x0 in enumerate(starts)]
    notes, generation = [], 0
    while True:
        one_generation(search, runs)
        generation += 1
        if len(runs) > 1 and generation % rounds == 0:
            runs = sorted(runs, key=lambda r: r.best)[: max(1, len(runs) // 2)]
            notes.append(
                f"after {generation} generations ({search.renders} renders), {len(runs)} run(s) kept, "
                f"best {runs[0].best:.5g}"
            )
        why = "render budget spent" if search.exhausted else runs[0].stopped() if len(runs) == 1 else None
        if why:
            notes.append(f"the last run: {why}, best {runs[0].best:.5g}")
            return notes


@dataclass
class CmaResult:
    theta: np.ndarray  # (P,) the best setting evaluated
    loss: float
    iterations: int
    evaluations: int
    history: List[Dict[str, float]] = field(default_factory=list)  # per iteration: best, median, seconds


def optimise_cma(
    evaluate: Callable[[np.ndarray], np.ndarray],
    x0: Sequence[float],
    iterations: int,
    population: int = 32,
    sigma: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    description: str = "match (CMA-ES)",
) -> CmaResult:
    """CMA-ES from ``x0``: up to ``iterations`` generations of ``population`` settings (cma's
    own stops apply), each generation one call of ``evaluate(thetas (population, P)) ->
    (population,) losses``. Deterministic for a seed."""
    if iterations < 1:
        raise ValueError(f"need iterations >= 1, got {iterations}")
    search = Search(evaluate, len(x0), progress=Progress(progress, description))
    search.stage = "CMA-ES"
    cma_run(search, x0, sigma, population, seed, iterations=iterations)
    return CmaResult(
        search.best_theta.astype(np.float32),
        search.best_loss,
        len(search.history),
        search.renders,
        [{"best": h["best"], "median": h["median"], "seconds": h["seconds"]} for h in search.history],
    )


def optimise_spsa(
    chain_config: Dict[str, Any],
    pairs: Sequence[Tuple[Path, Path]],
    steps: int,
    out_dir: Path,
    seed: int = 0,
    threads: Optional[int] = None,
    progress: bool = True,
) -> np.ndarray:
    """``fxgrad fit-static``'s SPSA optimiser (its lanes, stream, multi-resolution STFT loss on
    frames, Adam on logits) on aligned (input, reference) pairs; returns the setting (P,)."""
    from ..config.schema import Config
    from ..data.stream import PairedAudioDataset
    from ..train import fit_static

    block = int(chain_config.get("block_size", 1024))
    raw = {
        "name": "match",
        "output_dir": str(out_dir),
        "seed": int(seed),
        "sample_rate": int(round(float(chain_config.get("sample_rate", 44100)))),
        "channels": int(chain_config.get("channels", 2)),
        "frame_size": block * max(1, -(-1024 // block)),
        "chain": {
            "plugins": list(chain_config["plugins"]),
            "learned": chain_config.get("learned"),
            "pinned": dict(chain_config.get("pinned") or {}),
            "block_size": block,
        },
        # The data section names the pairs' folders; fit_static is handed the pairs themselves.
        "data": {"train": {"input": str(Path(pairs[0][0]).parent), "target": str(Path(pairs[0][1]).parent)}},
        "loss": {"type": "mrstft"},
        "spsa": {"threads": threads},
        "fit_static": {"steps": int(steps), "lr": 0.02},
    }
    config = Config.from_dict(raw)
    try:
        dataset = PairedAudioDataset.from_pairs(pairs, config.sample_rate, config.channels, cache_size=len(pairs))
    except ValueError as error:
        raise ValueError(f"--method spsa compares frame by frame and needs aligned pairs: {error}") from None
    result = fit_static(config, progress=progress, output=out_dir / "spsa.json", dataset=dataset)
    return np.asarray(result["normalised"], np.float32)
