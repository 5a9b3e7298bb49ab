"""How ``fxgrad match`` spends its renders: a :class:`Strategy` (a coarse screen of settings,
the start moved off the range ends, CMA-ES with a population and a plateau stop, restarts with
growing (IPOP) or alternating (BIPOP) populations, a local polish from the best), and
:func:`run_strategy`, which carries one out on a :class:`~fxgrad.match.optimise.Search`.

``AUTO`` is the strategy ``--method auto`` uses: the one bench/match_cases.py found to reach
the best loss with the fewest renders (docs/matching.md has its table)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .optimise import CmaRun, Plateau, Search, cma_race, cma_run, inset, latin_hypercube, one_generation


@dataclass(frozen=True)
class Strategy:
    """A recipe for spending renders.

    * ``screen``: settings spread over the range (a Latin hypercube; ``screen`` per parameter)
      rendered with the start in one batch; CMA-ES begins at the best of them.
    * ``margin``: the start is moved at least this far inside [0, 1] (normalised).
    * ``population``: CMA-ES's, or None for cma's default 4 + 3 ln P (never the thread count:
      a seed gives the same search on any machine).
    * ``sigma``: CMA-ES's initial step; ``iterations``: the most generations of a run (None:
      until cma's own stop); ``plateau``: stop a run that no longer improves.
    * ``restarts``, ``grow``, ``bipop``: after a run stops, up to ``restarts`` more, each from
      the next start (:func:`_starts`; then random settings), with twice the population
      (IPOP), the same (``grow`` False), or alternating with small populations and steps
      (BIPOP), while renders remain; ``agree``: stop once the two best runs' losses are within
      this share of each other (two starts found the same minimum).
    * ``side_by_side``: this many of those runs at a time, every generation's settings of all of
      them rendered in one batch (enough settings to keep many render threads busy); a run that
      stops makes room for the next. Each run is the one it would be alone (start, population,
      step, seed); only the order of the renders changes.
    * ``race``: instead, this many runs from the first starts at once (:func:`cma_race`), the
      worse half dropped every ``race_rounds`` generations.
    * ``polish``: a last run from the best with ``sigma * polish`` and the base population.
    """

    name: str
    screen: float = 0.0
    margin: float = 0.0
    population: Optional[int] = None
    sigma: float = 0.1
    iterations: Optional[int] = None
    plateau: Optional[Plateau] = None
    restarts: int = 0
    grow: bool = True
    bipop: bool = False
    agree: Optional[float] = None
    side_by_side: int = 1
    race: int = 0
    race_rounds: int = 10
    polish: float = 0.0

    def base_population(self, parameters: int) -> int:
        return int(self.population or 4 + int(3 * math.log(parameters)))


STITO = Strategy("stito", population=32, sigma=0.1, iterations=300)
"""ST-ITO's loop (ISMIR 2024): CMA-ES, population 32, from the chain's settings, up to 300
generations."""
AUTO = Strategy("auto", screen=4.0, margin=0.1, sigma=0.2, plateau=Plateau(), restarts=2, side_by_side=2, polish=0.25)
"""``--method auto``'s strategy (chosen by bench/match_cases.py; see docs/matching.md): a screen, IPOP
restarts two runs at a time (the same runs as one at a time, in fewer, larger batches that keep
more render threads busy), a polish."""
AUTO_REASON = (
    "on bench/match_cases.py's 25 cases (2 s each, 2 cores) it got within 1 % of the best loss any strategy found "
    "on 23 (with 3000 renders: 22; its runs one at a time: the same runs, 7 % faster on 2 cores, slower on many), "
    "and on the 8 VST3 cases ended at most 0.01 % above the loss of ST-ITO's loop (CMA-ES 32 x 300 over "
    "pedalboard in a process pool; far below it on 3) in a median 8.5 s against 27.0 s (docs/matching.md)"
)
"""What the benchmark showed, printed in ``fxgrad match``'s summary."""


def run_strategy(search: Search, strategy: Strategy, start: Sequence[float], seed: int) -> List[str]:
    """Spend ``search``'s renders as ``strategy`` says, from ``start`` (P,); returns one line per
    stage (what it did, why it stopped). The best setting is ``search.best_theta``."""
    rng = np.random.default_rng([int(seed), 0x6D61])
    population = strategy.base_population(search.parameters)
    starts, notes = _starts(search, strategy, start, rng)
    if strategy.race > 1:
        search.stage = "CMA-ES race"
        notes += cma_race(
            search, starts[: strategy.race], strategy.sigma, population, seed, strategy.race_rounds, strategy.plateau
        )
        return notes + _polish(search, strategy, population, seed + strategy.race)
    runs, finals = 1 + strategy.restarts, []
    spent_by_kind = {"small run": 0, "run": 0}
    active: List[_Run] = []
    begun, agreed = 0, False
    while True:
        while not agreed and begun < runs and len(active) < max(1, strategy.side_by_side) and not search.exhausted:
            x0 = starts[begun] if begun < len(starts) else inset(rng.uniform(0, 1, search.parameters), strategy.margin)
            size, sigma, kind = _run_shape(strategy, population, begun, spent_by_kind, rng)
            stage = f"CMA-ES {kind} {begun + 1}" if runs > 1 else "CMA-ES"
            active.append(
                _Run(CmaRun(x0, sigma, size, seed + begun, strategy.iterations, strategy.plateau), stage, kind, sigma)
            )
            begun += 1
        if not active:
            break
        search.stage = " + ".join(run.stage for run in active)
        still = []
        for run, rendered in zip(active, one_generation(search, [run.cma for run in active])):
            run.renders += rendered
            spent_by_kind["small run" if run.kind == "small run" else "run"] += rendered
            why = run.cma.stopped() or ("render budget spent" if search.exhausted else None)
            if why is None:
                still.append(run)
                continue
            finals.append(run.cma.best)
            notes.append(
                f"{run.stage}: population {run.cma.population}, sigma {run.sigma:.3g}, {run.renders} renders, "
                f"best {run.cma.best:.5g}, {why}"
            )
            first, second = sorted(finals)[:2] if len(finals) > 1 else (finals[0], math.inf)
            if strategy.agree is not None and not agreed and second <= first * (1 + strategy.agree):
                notes.append(f"two runs from different starts agree within {100 * strategy.agree:g} %: done")
                agreed = True
        active = [] if agreed else still
    return notes + _polish(search, strategy, population, seed + runs)


@dataclass
class _Run:
    """A CMA-ES run of :func:`run_strategy` in progress: its stage name, kind, initial step and renders."""

    cma: CmaRun
    stage: str
    kind: str
    sigma: float
    renders: int = 0


def _polish(search: Search, strategy: Strategy, population: int, seed: int) -> List[str]:
    if strategy.polish <= 0 or search.exhausted:
        return []
    search.stage = "polish"
    spent, sigma = search.renders, strategy.sigma * strategy.polish
    why, _ = cma_run(search, search.best_theta, sigma, population, seed, None, strategy.plateau)
    return [f"polish: CMA-ES from the best, sigma {sigma:.3g}, {search.renders - spent} renders, {why}"]


def _starts(search: Search, strategy: Strategy, start: Sequence[float], rng) -> Tuple[List[np.ndarray], List[str]]:
    """The runs' starting settings, in order: the chain's own (moved off the range ends) alone,
    or, after a screen, its best, then the chain's own where it is not that, then the rest of
    the screen from the best down."""
    own = inset(start, strategy.margin)
    if strategy.screen <= 0:
        return [own], []
    search.stage = "screen"
    count = max(2, int(round(strategy.screen * search.parameters)))
    points = np.concatenate([own[None], inset(latin_hypercube(rng, count, search.parameters), strategy.margin)])
    losses = search(points)
    order = [int(k) for k in np.argsort(losses, kind="stable")]
    if order[0] != 0:  # the chain's own settings next: a screen can point to the wrong basin
        order.remove(0)
        order.insert(1, 0)
    note = f"screen: {len(points)} settings (the start and a Latin hypercube), best {losses.min():.5g}"
    return [points[k] for k in order], [note]


def _run_shape(strategy: Strategy, population: int, run: int, spent_by_kind, rng) -> Tuple[int, float, str]:
    """(population, sigma, kind) of restart ``run``: the base one first; then twice the last
    (IPOP, ``grow``), the same (``grow`` False), or under BIPOP either a large run (IPOP's) or,
    while small runs have spent fewer renders than large ones, a small one with a random smaller
    population and step."""
    if run == 0:
        return population, strategy.sigma, "run"
    if not strategy.bipop:
        return population * (2**run if strategy.grow else 1), strategy.sigma, "run"
    large = population * 2 ** (run // 2 + 1)
    if spent_by_kind["small run"] < spent_by_kind["run"]:
        u = rng.uniform()
        return max(2, int(population * (large / population) ** (u * u))), strategy.sigma * 10 ** (-2 * u), "small run"
    return large, strategy.sigma, "large run"


def with_options(strategy: Strategy, **changes) -> Strategy:
    """``strategy`` with some fields changed (None values leave a field as it is)."""
    return replace(strategy, **{k: v for k, v in changes.items() if v is not None})
