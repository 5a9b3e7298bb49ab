"""Searching a chain's settings without a model: the objective over a population of settings,
CMA-ES on it, and ``fxgrad fit-static``'s SPSA on aligned pairs (``fxgrad match``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .loss import MatchLoss


class Objective:
    """The mean match loss over one or more (input, loss) pairs, for a population of settings.

    Calling it with thetas (K, P) in [0, 1] renders every input K times through the chain
    (:func:`fxgrad.render_batch`, at most ``max_bytes`` of output at once) and returns (K,)
    mean losses. ``renders``, ``render_seconds`` and ``loss_seconds`` count the work so far.
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
        self.chain, self.inputs, self.losses = (
            chain,
            [np.ascontiguousarray(x, np.float32) for x in inputs],
            list(losses),
        )
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
    """CMA-ES (``cma`` package) over normalised parameters in [0, 1], from ``x0``:
    ``iterations`` generations of ``population`` settings, each generation one call of
    ``evaluate(thetas (population, P)) -> (population,) losses``. Deterministic for a seed."""
    import cma
    from tqdm import tqdm

    if iterations < 1 or population < 2 or not 0 < sigma < 1:
        raise ValueError(
            f"need iterations >= 1, population >= 2 and 0 < sigma < 1; got {iterations}, {population}, {sigma}"
        )
    x0 = np.clip(np.asarray(x0, np.float64), 0.0, 1.0)
    if len(x0) == 1:
        raise ValueError("CMA-ES needs at least two parameters; use --method spsa for one")
    # cma takes seed 0 for "from the clock"; ours start at 0.
    options = {"popsize": int(population), "bounds": [0.0, 1.0], "seed": int(seed) + 1, "verbose": -9}
    strategy = cma.CMAEvolutionStrategy(list(x0), float(sigma), options)
    best_theta, best_loss, history, evaluations = x0.copy(), math.inf, [], 0
    bar = tqdm(range(iterations), desc=description, unit="it", dynamic_ncols=True, disable=not progress)
    for _ in bar:
        began = time.perf_counter()
        candidates = [np.clip(np.asarray(c, np.float64), 0.0, 1.0) for c in strategy.ask()]
        losses = np.asarray(evaluate(np.stack(candidates).astype(np.float32)), np.float64)
        if not np.isfinite(losses).all():
            raise RuntimeError("the loss is NaN or infinite for some settings")
        strategy.tell(candidates, losses.tolist())
        evaluations += len(candidates)
        k = int(np.argmin(losses))
        if losses[k] < best_loss:
            best_loss, best_theta = float(losses[k]), candidates[k].copy()
        history.append({"best": best_loss, "median": float(np.median(losses)), "seconds": time.perf_counter() - began})
        bar.set_postfix_str(f"best {best_loss:.4g}  {history[-1]['seconds']:.2f} s/it", refresh=False)
        if strategy.stop():
            break
    bar.close()
    return CmaResult(best_theta.astype(np.float32), best_loss, len(history), evaluations, history)


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
