"""Matching a reference: the settings of a chain that make an input sound like a reference,
found without training a model (ST-ITO's inference-time optimisation, on any plugin format).

``fxgrad match INPUT REFERENCE --chain CHAIN.yaml`` is :func:`match_files`:

* the loss (:mod:`fxgrad.match.loss`) compares a rendered output with the reference.
  ``aligned`` (the same material, e.g. a mix and its master): multi-resolution STFT distance
  plus loudness difference. ``style`` (other material, any length): the long-term spectral
  balance, the loudness and the spread of short-term loudness (dynamics). ``auto`` picks
  ``aligned`` when both files last the same time;
* the search renders a whole population of settings at once with :func:`fxgrad.render_batch`
  and computes their losses in one batched call. ``auto`` (the default) spends its renders as
  :data:`fxgrad.match.strategy.AUTO` says, the strategy bench/match_cases.py found to reach
  the best loss with the fewest renders; ``cma``: plain CMA-ES (the ``cma`` package, bounds
  [0, 1] on the normalised parameters) from the chain's settings; ``spsa``: the SPSA optimiser
  of ``fxgrad fit-static`` (:func:`fxgrad.train.fit_static`) on the pair(s), frame by frame;
* ``start`` / ``duration`` (seconds) match a segment of long files; the output is the whole
  input rendered at the settings found;
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
from .optimise import Objective, optimise_spsa

# torch and the native host load on first use: the CLI's parser reads this module's constants.

LOSSES = ("auto", "aligned", "style")
METHODS = ("auto", "cma", "spsa")
DEFAULT_BUDGET = {"auto": 4000, "cma": 960, "spsa": 400}
"""The most renders (auto, cma: 30 generations of 32) or SPSA steps when ``--budget`` is not given."""
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


def _read_pairs(pairs: Sequence[Tuple[str, Path, Path]], loss: str, rate: int, channels: int, segment):
    """``(inputs, references, losses, kinds, whole_inputs)``: each pair read at the chain's rate
    and channels and cut to ``segment`` (start, duration in seconds or None), an aligned pair
    trimmed to its shorter file, with its :class:`MatchLoss`; ``whole_inputs``: the inputs
    uncut (rendered at the settings found)."""
    from ..data.audio import read_audio
    from .loss import MatchLoss  # here: the loss needs torch, which `fxgrad info` never imports

    inputs, references, losses, kinds, whole = [], [], [], [], []
    for _name, source, target in pairs:
        audio, reference = read_audio(source, rate, channels), read_audio(target, rate, channels)
        whole.append(np.ascontiguousarray(audio))
        audio, reference = _segment(audio, source, rate, segment), _segment(reference, target, rate, segment)
        kind = _loss_kind(loss, audio.shape[-1], reference.shape[-1], rate)
        if kind == "aligned":
            length = min(audio.shape[-1], reference.shape[-1])
            audio, reference = audio[:, :length], reference[:, :length]
        inputs.append(np.ascontiguousarray(audio))
        references.append(np.ascontiguousarray(reference))
        losses.append(MatchLoss(reference, rate, kind))
        kinds.append(kind)
    return inputs, references, losses, kinds, whole


def _segment(audio: np.ndarray, path: Path, rate: int, segment) -> np.ndarray:
    start_s, duration_s = segment
    if start_s is None and duration_s is None:
        return audio
    start = int(round((start_s or 0.0) * rate))
    if start < 0 or (duration_s is not None and duration_s <= 0):
        raise ValueError(f"--start must be >= 0 and --duration > 0, got {start_s} and {duration_s}")
    if start >= audio.shape[-1]:
        raise ValueError(f"{path} lasts {audio.shape[-1] / rate:.2f} s: --start {start_s} is past its end")
    end = audio.shape[-1] if duration_s is None else start + int(round(duration_s * rate))
    return np.ascontiguousarray(audio[:, start:end])


def match_files(
    input_path: PathLike,
    reference_path: PathLike,
    chain_path: PathLike,
    out_dir: Optional[PathLike] = None,
    method: str = "auto",
    budget: Optional[int] = None,
    population: Optional[int] = None,
    sigma: Optional[float] = None,
    loss: str = "auto",
    seed: int = 0,
    threads: Optional[int] = None,
    progress: bool = True,
    presets: bool = True,
    start: Optional[float] = None,
    duration: Optional[float] = None,
) -> Dict[str, Any]:
    """Find the chain's learned settings that make ``input_path`` sound like ``reference_path``
    (files, or folders paired by file name: one setting for all pairs; ``start`` and
    ``duration`` in seconds cut both to a segment) and write the results to ``out_dir``
    (default ``runs/match/INPUT_NAME``): ``output.wav`` (or ``output/NAME.wav``: the whole
    inputs at the settings found), ``settings.json``, ``settings.csv``, ``match.png`` and
    ``presets/``. Returns the content of ``settings.json`` with ``paths`` added. ``budget``:
    the most renders (auto, cma) or SPSA steps; ``population``, ``sigma``: CMA-ES's (auto: its
    own unless given)."""
    from ..config.chainfile import load_chain
    from ..io.params import read_parameter_csv, write_parameter_csv

    began = time.perf_counter()
    budget = _budget(method, loss, budget)
    input_path, reference_path = Path(input_path), Path(reference_path)
    pairs = pair_paths(input_path, reference_path)
    out_dir = Path(out_dir) if out_dir else Path("runs") / "match" / input_path.stem
    chain, config = load_chain(chain_path)
    if chain.num_parameters == 0:
        raise ValueError(f"{chain_path}: the chain learns no parameter (set 'learned')")
    rate, names = int(round(chain.sample_rate)), list(chain.learned)
    inputs, references, losses, kinds, whole = _read_pairs(pairs, loss, rate, chain.channels, (start, duration))
    objective = Objective(chain, inputs, losses, threads)
    initial = np.asarray(chain.get_learned(), np.float32)

    searched = time.perf_counter()
    found = _search(
        method, objective, initial, budget, population, sigma, seed, threads, progress, config, pairs, kinds, out_dir
    )
    theta, iterations, history, notes = found
    search_seconds = time.perf_counter() - searched
    # The settings CSV holds 6 decimals: everything from here on uses the values it holds, so
    # that `fxgrad render --params settings.csv` reproduces the output exactly.
    paths: Dict[str, Any] = {"params": out_dir / "settings.csv"}
    write_parameter_csv(paths["params"], chain, theta[None], chain.block_size)
    theta = read_parameter_csv(paths["params"], names)[0]
    report = identifiability(objective, theta, initial, names)
    title = f"{pairs[0][1].name} matched to {pairs[0][2].name} ({method}, {kinds[0]} loss)"
    plotted = (inputs[0], references[0], initial, report, history, title)
    rendered = time.perf_counter()
    outputs = _render_outputs(chain, theta, whole, threads)
    output_seconds = time.perf_counter() - rendered
    written = _write_outputs(chain, outputs, pairs, input_path, out_dir, theta, presets, plotted, paths)
    result = {
        "input": str(input_path),
        "reference": str(reference_path),
        "pairs": len(pairs),
        "segment": {"start_s": start, "duration_s": duration},
        "method": method,
        "notes": notes,
        "loss": kinds[0] if len(set(kinds)) == 1 else kinds,
        "budget": budget,
        "iterations": iterations,
        "renders": objective.renders,
        "search_seconds": search_seconds,
        "render_seconds": objective.render_seconds + output_seconds,
        "loss_seconds": objective.loss_seconds,
        "loss_device": str(losses[0].device),
        **_settings(chain, theta, initial, report, history),
        "presets": written,
        "chain": config,
    }
    result["seconds"] = time.perf_counter() - began
    paths["settings"] = out_dir / "settings.json"
    atomic_write_bytes(paths["settings"], json.dumps(result, indent=2).encode())
    result["paths"] = paths
    return result


def _search(
    method, objective, initial, budget, population, sigma, seed, threads, progress, config, pairs, kinds, out_dir
):
    """Run ``method``: ``(theta (P,), iterations, history, notes)``."""
    from .optimise import Progress, Search
    from .strategy import AUTO, Strategy, run_strategy, with_options

    if method == "spsa":
        if set(kinds) != {"aligned"}:
            raise ValueError(
                "--method spsa compares frame by frame: it needs aligned pairs (same material, same length)"
            )
        theta = optimise_spsa(config, [(s, t) for _, s, t in pairs], budget, out_dir, seed, threads, progress)
        return theta, budget, [], [f"fxgrad fit-static's SPSA, {budget} steps"]
    if method == "auto":
        strategy = with_options(AUTO, population=population, sigma=sigma)
    else:
        strategy = Strategy("cma", population=population or 32, sigma=0.1 if sigma is None else sigma)
    search = Search(objective, len(initial), budget, Progress(progress, f"match ({method})"))
    notes = run_strategy(search, strategy, initial, seed)
    search.progress.update(
        search.stage, search.renders, search.best_loss, time.perf_counter() - search.began, final=True
    )
    history = [{k: h[k] for k in ("stage", "renders", "best", "median", "seconds")} for h in search.history]
    return search.best_theta.astype(np.float32), len(search.history), history, notes


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


def _render_outputs(chain, theta: np.ndarray, inputs: Sequence[np.ndarray], threads) -> List[np.ndarray]:
    """Every (whole) input rendered at ``theta``."""
    from ..host.batch import render_batch

    return [render_batch(chain, theta, audio, threads)[0] for audio in inputs]


def _write_outputs(chain, outputs, pairs, input_path: Path, out_dir: Path, theta, presets: bool, plotted, paths):
    """Write the rendered ``outputs``, the plot (of the first pair's searched segment: ``plotted``
    is its input, reference, start, report, history and title) and the presets; adds their
    paths to ``paths`` and returns the presets' entries of ``settings.json``."""
    from ..data.audio import write_audio
    from ..host.batch import render_batch
    from ..io.plot import plot_match

    rate = int(round(chain.sample_rate))
    if input_path.is_dir():
        for (name, _, _), output in zip(pairs, outputs):
            write_audio(out_dir / "output" / f"{name}.wav", output, rate)
        paths["audio"] = out_dir / "output"
    else:
        paths["audio"] = out_dir / "output.wav"
        write_audio(paths["audio"], outputs[0], rate)
    paths["plot"] = out_dir / "match.png"
    before, reference, start, report, history, title = plotted
    after = render_batch(chain, theta, before)[0] if before.shape != outputs[0].shape else outputs[0]
    plot_match(paths["plot"], rate, before, after, reference, list(chain.learned), start, theta, report, history, title)
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
    """The text ``fxgrad match`` prints: what the search did and where the time went, the loss
    before/after, the settings with identifiability, and the files written."""
    from .strategy import AUTO_REASON

    seconds, render, loss = result["seconds"], result["render_seconds"], result["loss_seconds"]
    other = max(0.0, seconds - render - loss)
    lines = [
        f"{result['method']} on {result['pairs']} pair(s): {result['renders']} renders, {seconds:.1f} s in all: "
        f"renders {render:.1f} s ({100 * render / seconds:.0f} %), loss {loss:.1f} s ({100 * loss / seconds:.0f} %, "
        f"on {result['loss_device']}), other {other:.1f} s ({100 * other / seconds:.0f} %); "
        f"loss {result['start_loss']:.5g} at the start -> {result['final_loss']:.5g}",
    ]
    if result["method"] == "auto":
        lines.append(f"why auto: {AUTO_REASON}")
    lines += [f"  {note}" for note in result["notes"]]
    lines.append(identifiability_table(result["identifiability"], result["plain"], result["units"]))
    for preset in result["presets"]:
        if preset["path"] is None:
            lines.append(f"no preset for plugin {preset['plugin']} ({preset['name']}): {preset['note']}")
    for key in ("audio", "settings", "params", "plot", "presets"):
        if key in result["paths"]:
            lines.append(f"{key + ':':10s}{result['paths'][key]}")
    return "\n".join(lines)
