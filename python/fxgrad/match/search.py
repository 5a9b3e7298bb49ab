"""Matching a reference: the settings of a chain that make an input sound like a reference,
found without training a model (ST-ITO's inference-time optimisation, on any plugin format).

``fxgrad match INPUT REFERENCE --chain CHAIN.yaml`` is :func:`match_files`:

* the loss (:mod:`fxgrad.match.loss`) compares a rendered output with the reference.
  ``aligned`` (the same material, e.g. a mix and its master): multi-resolution STFT distance
  plus loudness difference. ``style`` (other material, any length): the long-term spectral
  balance, the loudness and the spread of short-term loudness (dynamics). ``auto`` picks
  ``aligned`` when both files last the same time;
* CMA-ES (the ``cma`` package, bounds [0, 1] on the normalised parameters) evaluates a whole
  population per iteration with :func:`fxgrad.render_batch`; or ``spsa``: the SPSA optimiser of
  ``fxgrad fit-static`` (:func:`fxgrad.train.fit_static`) on the pair(s), frame by frame (both
  in :mod:`fxgrad.match.optimise`);
* a folder of inputs and a folder of references (paired by file name) get one setting for all;
* the result: the rendered output, the settings (plain and normalised; JSON and a parameter CSV
  that ``fxgrad render --params`` reads), a before/after plot, presets for each plugin
  (:mod:`fxgrad.io.presets`) and an identifiability report (:mod:`fxgrad.match.identifiability`): per
  parameter, how much the loss rises when it moves, with a warning for parameters the reference
  barely constrains.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..base.files import PathLike, atomic_write_bytes
from ..base.folders import pair_paths
from .identifiability import identifiability, identifiability_table
from .loss import MatchLoss
from .optimise import Objective, optimise_cma, optimise_spsa

# torch and the native host load on first use: the CLI's parser reads this module's constants.

LOSSES = ("auto", "aligned", "style")
METHODS = ("cma", "spsa")
DEFAULT_BUDGET = {"cma": 30, "spsa": 400}
"""Iterations (CMA-ES generations) or SPSA steps when ``--budget`` is not given."""
_LENGTH_TOLERANCE_S = 0.01


def _loss_kind(kind: str, input_samples: int, reference_samples: int, sample_rate: float) -> str:
    if kind == "auto":
        return "aligned" if abs(input_samples - reference_samples) <= _LENGTH_TOLERANCE_S * sample_rate else "style"
    if kind == "aligned" and abs(input_samples - reference_samples) > _LENGTH_TOLERANCE_S * sample_rate:
        raise ValueError(
            f"the aligned loss needs an input and a reference of the same length; got {input_samples} "
            f"and {reference_samples} samples (use --loss style for other material)"
        )
    return kind


def _budget(method: str, loss: str, budget: Optional[int]) -> int:
    """The budget after checking the options (the method's default when None)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    budget = DEFAULT_BUDGET[method] if budget is None else int(budget)
    if budget < 1:
        raise ValueError(f"--budget must be >= 1, got {budget}")
    return budget


def _read_pairs(pairs: Sequence[Tuple[str, Path, Path]], loss: str, rate: int, channels: int):
    """``(inputs, references, losses, kinds)``: each pair read at the chain's rate and channels,
    an aligned pair trimmed to its shorter file, with its :class:`MatchLoss`."""
    from ..data.audio import read_audio

    inputs, references, losses, kinds = [], [], [], []
    for _name, source, target in pairs:
        audio, reference = read_audio(source, rate, channels), read_audio(target, rate, channels)
        kind = _loss_kind(loss, audio.shape[-1], reference.shape[-1], rate)
        if kind == "aligned":
            length = min(audio.shape[-1], reference.shape[-1])
            audio, reference = audio[:, :length], reference[:, :length]
        inputs.append(np.ascontiguousarray(audio))
        references.append(np.ascontiguousarray(reference))
        losses.append(MatchLoss(reference, rate, kind))
        kinds.append(kind)
    return inputs, references, losses, kinds


def match_files(
    input_path: PathLike,
    reference_path: PathLike,
    chain_path: PathLike,
    out_dir: Optional[PathLike] = None,
    method: str = "cma",
    budget: Optional[int] = None,
    population: int = 32,
    sigma: float = 0.1,
    loss: str = "auto",
    seed: int = 0,
    threads: Optional[int] = None,
    progress: bool = True,
    presets: bool = True,
) -> Dict[str, Any]:
    """Find the chain's learned settings that make ``input_path`` sound like ``reference_path``
    (files, or folders paired by file name: one setting for all pairs) and write the results to
    ``out_dir`` (default ``runs/match/INPUT_NAME``): ``output.wav`` (or ``output/NAME.wav``),
    ``settings.json``, ``settings.csv``, ``match.png`` and ``presets/``. Returns the content of
    ``settings.json`` with ``paths`` added. ``budget``: CMA-ES generations or SPSA steps."""
    from ..config.chainfile import load_chain
    from ..io.params import read_parameter_csv, write_parameter_csv

    budget = _budget(method, loss, budget)
    input_path, reference_path = Path(input_path), Path(reference_path)
    pairs = pair_paths(input_path, reference_path)
    out_dir = Path(out_dir) if out_dir else Path("runs") / "match" / input_path.stem
    chain, config = load_chain(chain_path)
    if chain.num_parameters == 0:
        raise ValueError(f"{chain_path}: the chain learns no parameter (set 'learned')")
    rate, names = int(round(chain.sample_rate)), list(chain.learned)
    inputs, references, losses, kinds = _read_pairs(pairs, loss, rate, chain.channels)
    objective = Objective(chain, inputs, losses, threads)
    start = np.asarray(chain.get_learned(), np.float32)

    began = time.perf_counter()
    history: List[Dict[str, float]] = []
    if method == "cma":
        found = optimise_cma(objective, start, budget, population, sigma, seed, progress)
        theta, iterations, history = found.theta, found.iterations, found.history
    else:
        if set(kinds) != {"aligned"}:
            raise ValueError(
                "--method spsa compares frame by frame: it needs aligned pairs (same material, same length)"
            )
        theta = optimise_spsa(config, [(s, t) for _, s, t in pairs], budget, out_dir, seed, threads, progress)
        iterations = budget
    seconds = time.perf_counter() - began
    # The settings CSV holds 6 decimals: everything from here on uses the values it holds, so
    # that `fxgrad render --params settings.csv` reproduces the output exactly.
    paths: Dict[str, Any] = {"params": out_dir / "settings.csv"}
    write_parameter_csv(paths["params"], chain, theta[None], chain.block_size)
    theta = read_parameter_csv(paths["params"], names)[0]
    report = identifiability(objective, theta, start, names)
    title = f"{pairs[0][1].name} matched to {pairs[0][2].name} ({method}, {kinds[0]} loss)"
    plotted = (inputs[0], references[0], start, report, history, title)
    written = _write_outputs(chain, theta, pairs, inputs, input_path, out_dir, threads, presets, plotted, paths)
    result = {
        "input": str(input_path),
        "reference": str(reference_path),
        "pairs": len(pairs),
        "method": method,
        "loss": kinds[0] if len(set(kinds)) == 1 else kinds,
        "budget": budget,
        "iterations": iterations,
        "renders": objective.renders,
        "seconds": seconds,
        "render_seconds": objective.render_seconds,
        "loss_seconds": objective.loss_seconds,
        **_settings(chain, theta, start, report, history),
        "presets": written,
        "chain": config,
    }
    paths["settings"] = out_dir / "settings.json"
    atomic_write_bytes(paths["settings"], json.dumps(result, indent=2).encode())
    result["paths"] = paths
    return result


def _settings(chain, theta: np.ndarray, start: np.ndarray, report: Dict[str, Any], history) -> Dict[str, Any]:
    """The settings part of ``settings.json``: names, units, values, losses, identifiability."""
    from ..io.params import parameter_units, plain_values

    return {
        "parameters": list(chain.learned),
        "units": parameter_units(chain),
        "normalised": [float(v) for v in theta],
        "plain": [float(v) for v in plain_values(chain, theta[None])[0]],
        "start": [float(v) for v in start],
        "start_loss": report["start_loss"],
        "final_loss": report["loss"],
        "identifiability": report,
        "history": history,
    }


def _write_outputs(
    chain, theta, pairs, inputs, input_path: Path, out_dir: Path, threads, presets: bool, plotted, paths
):
    """Render every input at ``theta`` and write the audio, the plot (of the first pair:
    ``plotted`` is its input, reference, start, report, history and title) and the presets;
    adds their paths to ``paths`` and returns the presets' entries of ``settings.json``."""
    from ..data.audio import write_audio
    from ..host.batch import render_batch
    from ..io.plot import plot_match

    rate = int(round(chain.sample_rate))
    outputs = [render_batch(chain, theta, audio, threads)[0] for audio in inputs]
    if input_path.is_dir():
        for (name, _, _), output in zip(pairs, outputs):
            write_audio(out_dir / "output" / f"{name}.wav", output, rate)
        paths["audio"] = out_dir / "output"
    else:
        paths["audio"] = out_dir / "output.wav"
        write_audio(paths["audio"], outputs[0], rate)
    paths["plot"] = out_dir / "match.png"
    before, reference, start, report, history, title = plotted
    plot_match(
        paths["plot"], rate, before, outputs[0], reference, list(chain.learned), start, theta, report, history, title
    )
    if not presets:
        return []
    from ..io.presets import write_presets

    written = write_presets(chain, out_dir / "presets", f"match-{input_path.stem}", theta)
    paths["presets"] = out_dir / "presets"
    return [
        {
            "plugin": p.plugin,
            "name": p.name,
            "format": p.format,
            "path": None if p.path is None else str(p.path),
            "note": p.note,
        }
        for p in written
    ]


def match_report(result: Dict[str, Any]) -> str:
    """The text ``fxgrad match`` prints: loss before/after, the settings with identifiability,
    and the files written."""
    lines = [
        f"{result['method']} on {result['pairs']} pair(s), {result['iterations']} iteration(s), "
        f"{result['renders']} renders in {result['seconds']:.1f} s ({result['render_seconds']:.1f} s rendering); "
        f"loss {result['start_loss']:.5g} at the start -> {result['final_loss']:.5g}",
        identifiability_table(result["identifiability"], result["plain"], result["units"]),
    ]
    for preset in result["presets"]:
        if preset["path"] is None:
            lines.append(f"no preset for plugin {preset['plugin']} ({preset['name']}): {preset['note']}")
    for key in ("audio", "settings", "params", "plot", "presets"):
        if key in result["paths"]:
            lines.append(f"{key + ':':10s}{result['paths'][key]}")
    return "\n".join(lines)
