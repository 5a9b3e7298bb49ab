"""Matching a reference: the settings of a chain that make an input sound like a reference,
found without training a model (ST-ITO's inference-time optimisation, on any plugin format).

``fxgrad match INPUT REFERENCE --chain CHAIN.yaml`` is :func:`match_files`:

* the loss compares a rendered output with the reference. ``aligned`` (the same material, e.g.
  a mix and its master): multi-resolution STFT distance plus loudness difference. ``style``
  (other material, any length): the long-term spectral balance, the loudness and the spread of
  short-term loudness (dynamics). ``auto`` picks ``aligned`` when both files last the same time;
* CMA-ES (the ``cma`` package, bounds [0, 1] on the normalised parameters) evaluates a whole
  population per iteration with :func:`fxgrad.render_batch`; or ``spsa``: the SPSA optimiser of
  ``fxgrad fit-static`` (:func:`fxgrad.train.fit_static`) on the pair(s), frame by frame;
* a folder of inputs and a folder of references (paired by file name) get one setting for all;
* the result: the rendered output, the settings (plain and normalised; JSON and a parameter CSV
  that ``fxgrad render --params`` reads), a before/after plot, presets for each plugin
  (:mod:`fxgrad.presets`) and an identifiability report (:func:`identifiability`): per
  parameter, how much the loss rises when it moves, with a warning for parameters the reference
  barely constrains.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._files import atomic_write_bytes

# torch and the native host load on first use: the CLI's parser reads this module's constants.
PathLike = Union[str, os.PathLike]

LOSSES = ("auto", "aligned", "style")
METHODS = ("cma", "spsa")
DEFAULT_BUDGET = {"cma": 30, "spsa": 400}
"""Iterations (CMA-ES generations) or SPSA steps when ``--budget`` is not given."""

IDENTIFIABILITY_STEP = 0.1
"""Normalised move of one parameter at a time around the solution."""
RESIDUAL_FLOOR = 0.001
"""The yardstick of a loss rise is the loss left at the solution, or this share of what
matching gained where the match is (nearly) exact."""
BARELY_CONSTRAINED = 0.1
"""A parameter whose move raises the loss by less than this share of the yardstick is barely
constrained (a warning); by less than the yardstick itself, weakly determined."""

_RESOLUTIONS = ((2048, 512), (1024, 256), (512, 128))
_LENGTH_TOLERANCE_S = 0.01


# ---------------------------------------------------------------------------- the loss


def _k_weighting_power(sample_rate: float, n_fft: int) -> np.ndarray:
    """|H(f)|^2 of BS.1770's K-weighting at the rfft bins of ``n_fft``."""
    from .metrics import k_weighting_filters

    z = np.exp(-1j * 2 * np.pi * np.arange(n_fft // 2 + 1) / n_fft)
    response = np.ones_like(z)
    for b, a in k_weighting_filters(sample_rate):
        response *= np.polyval(b[::-1], z) / np.polyval(a[::-1], z)
    return np.abs(response) ** 2


def _magnitudes(audio: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """(C, frames, bins) float32 STFT magnitudes of (C, N) audio, frames centred (zero-padded
    by n_fft / 2 at both ends), floored at 1e-4."""
    padded = np.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)))
    if padded.shape[-1] < n_fft:
        padded = np.pad(padded, ((0, 0), (0, n_fft - padded.shape[-1])))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    return np.maximum(np.abs(np.fft.rfft(frames * window, axis=-1)).astype(np.float32), 1e-4)


@dataclass
class _Features:
    magnitudes: List[np.ndarray]  # per resolution, (C, frames, bins)
    loudness: float  # gated mean of the frames' K-weighted loudness, LUFS
    spectrum: Optional[np.ndarray]  # style: long-term mel-band level in dB (bands,)
    dynamics: Optional[np.ndarray]  # style: percentiles of short-term loudness - loudness


class MatchLoss:
    """Distance of rendered outputs from one reference, item by item (NumPy, one thread).

    Args:
        reference: float32 (C, N) audio.
        sample_rate: Hz.
        kind: ``"aligned"``: mean over three STFT resolutions (2048/1024/512) of spectral
            convergence plus log-magnitude L1 distance, plus 0.1 x |loudness difference| (LU);
            outputs must have the reference's length. ``"style"``: mean absolute difference of
            the long-term spectral balance (48 mel bands, dB, level removed) / 10, plus
            0.1 x |loudness difference|, plus the mean absolute difference of the 10/50/90/99th
            percentiles of 0.4 s loudness relative to the loudness (dB) / 10; any lengths.

    Loudness is BS.1770's K-weighted, gated mean power, taken from the 2048-point frames.
    Calling it on (K, C, N) outputs returns (K,) float64 losses (0 for the reference itself).
    """

    def __init__(self, reference: np.ndarray, sample_rate: float, kind: str = "aligned"):
        if kind not in ("aligned", "style"):
            raise ValueError(f"loss must be 'aligned' or 'style', got {kind!r}")
        self.kind = kind
        self.sample_rate = float(sample_rate)
        self.length = int(np.shape(reference)[-1])
        self._windows = {n: np.hanning(n + 1)[:-1].astype(np.float32) for n, _ in _RESOLUTIONS}  # periodic Hann
        n_fft = _RESOLUTIONS[0][0]
        doubled = np.full(n_fft // 2 + 1, 2.0)
        doubled[0] = doubled[-1] = 1.0
        # Mean square of a frame from its one-sided spectrum (Parseval, over the window's energy).
        self._weighting = (
            _k_weighting_power(self.sample_rate, n_fft) * doubled / (n_fft * float(np.sum(self._windows[n_fft] ** 2)))
        )
        if kind == "style":
            from .encoder import mel_filterbank

            self._mel = mel_filterbank(self.sample_rate, n_fft, 48).numpy()
        self.reference = self._features(np.ascontiguousarray(reference, np.float32))

    def _features(self, audio: np.ndarray) -> _Features:
        resolutions = _RESOLUTIONS if self.kind == "aligned" else _RESOLUTIONS[:1]
        magnitudes = [_magnitudes(audio, n_fft, hop, self._windows[n_fft]) for n_fft, hop in resolutions]
        power = magnitudes[0].astype(np.float64) ** 2  # (C, frames, bins)
        frame_power = (power @ self._weighting).sum(axis=0)  # (frames,)
        with np.errstate(divide="ignore"):
            frame_loudness = -0.691 + 10 * np.log10(np.maximum(frame_power, 1e-12))
        loud = frame_loudness > -70.0
        if loud.any():
            relative = -0.691 + 10 * math.log10(float(frame_power[loud].mean())) - 10.0
            keep = loud & (frame_loudness > relative)
            loudness = -0.691 + 10 * math.log10(float(frame_power[keep].mean()))
        else:
            keep, loudness = loud, -70.0
        spectrum = dynamics = None
        if self.kind == "style":
            frames = keep if keep.any() else np.ones_like(keep)
            bands = (power[:, frames] @ self._mel.T).sum(axis=0).mean(axis=0)
            spectrum = 10 * np.log10(np.maximum(bands, 1e-12))
            width = max(1, int(round(0.4 * self.sample_rate / _RESOLUTIONS[0][1])))
            smoothed = np.convolve(frame_power, np.full(width, 1.0 / width), mode="same")
            short_term = -0.691 + 10 * np.log10(np.maximum(smoothed, 1e-12))
            if (short_term > -70.0).any():
                short_term = short_term[short_term > -70.0]
            dynamics = np.percentile(short_term, [10, 50, 90, 99]) - loudness
        return _Features(magnitudes, loudness, spectrum, dynamics)

    def _distance(self, output: _Features) -> float:
        ref = self.reference
        loudness = 0.1 * abs(output.loudness - ref.loudness)
        if self.kind == "aligned":
            spectral = 0.0
            for x, y in zip(output.magnitudes, ref.magnitudes):
                convergence = float(np.linalg.norm(y - x) / np.linalg.norm(y))
                spectral += convergence + float(np.abs(np.log(y) - np.log(x)).mean())
            return spectral / len(output.magnitudes) + loudness
        difference = output.spectrum - ref.spectrum
        shape = float(np.abs(difference - difference.mean()).mean()) / 10.0
        dynamics = float(np.abs(output.dynamics - ref.dynamics).mean()) / 10.0
        return shape + loudness + dynamics

    def __call__(self, outputs: np.ndarray) -> np.ndarray:
        outputs = np.asarray(outputs, np.float32)
        if outputs.ndim != 3:
            raise ValueError(f"outputs must be shaped (K, channels, samples), got {outputs.shape}")
        if self.kind == "aligned" and outputs.shape[-1] != self.length:
            raise ValueError(
                f"the aligned loss needs outputs of the reference's {self.length} samples, got {outputs.shape[-1]}"
            )
        return np.array([self._distance(self._features(item)) for item in outputs])


# ---------------------------------------------------------------------------- the objective


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
        from .batch import render_batch

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


# ---------------------------------------------------------------------------- optimisers


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
    from .config import Config
    from .data import PairedAudioDataset
    from .train import fit_static

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


# ---------------------------------------------------------------------------- identifiability


def identifiability(
    evaluate: Callable[[np.ndarray], np.ndarray],
    theta: np.ndarray,
    start: np.ndarray,
    names: Sequence[str],
    step: float = IDENTIFIABILITY_STEP,
) -> Dict[str, Any]:
    """How well the loss determines each parameter at the solution ``theta``.

    Renders the solution, the starting setting and the solution with one parameter at a time
    moved by ``±step`` (normalised; one side only at a bound): 2P + 2 settings in one call of
    ``evaluate``. Per parameter, ``rise`` is the mean loss increase of its moves and
    ``contrast`` that rise over the yardstick: the loss left at the solution (what the chain
    cannot match), or 0.1 % of the gain (loss at ``start`` - loss at ``theta``) where that is
    larger. ``range`` is the move that would raise the loss by the yardstick, from a quadratic
    fit (capped at 1). ``status``: ``barely constrained`` (contrast < 0.1: the reference hardly
    tells this setting; a warning), ``weak`` (< 1), ``well determined``, or ``not at a minimum``
    when a move lowers the loss.

    Returns ``{"loss": at theta, "start_loss": at start, "step", "yardstick", "parameters": [...]}``.
    """
    theta = np.asarray(theta, np.float32)
    probes, owners = [theta, np.asarray(start, np.float32)], []
    for i in range(len(theta)):
        for sign in (1.0, -1.0):
            moved = theta.copy()
            moved[i] = np.clip(theta[i] + sign * step, 0.0, 1.0)
            if moved[i] != theta[i]:
                probes.append(moved)
                owners.append(i)
    losses = np.asarray(evaluate(np.stack(probes)), np.float64)
    best, start_loss = float(losses[0]), float(losses[1])
    yardstick = max(best, RESIDUAL_FLOOR * max(start_loss - best, 0.0), 1e-12)
    rows = []
    for i, name in enumerate(names):
        rises = [losses[2 + j] - best for j, owner in enumerate(owners) if owner == i]
        rise = float(np.mean(rises)) if rises else 0.0
        contrast = rise / yardstick
        if rises and min(rises) < -1e-9 * max(1.0, abs(best)):
            status = "not at a minimum"
        elif contrast < BARELY_CONSTRAINED:
            status = "barely constrained"
        elif contrast < 1.0:
            status = "weak"
        else:
            status = "well determined"
        width = 1.0 if contrast <= 0 else float(min(1.0, step / math.sqrt(contrast)))
        rows.append(
            {
                "parameter": name,
                "normalised": float(theta[i]),
                "rise": rise,
                "contrast": contrast,
                "range": width,
                "status": status,
            }
        )
    return {"loss": best, "start_loss": start_loss, "step": float(step), "yardstick": yardstick, "parameters": rows}


def fit_static_identifiability(config, result: Dict[str, Any], clips: int = 4) -> Dict[str, Any]:
    """:func:`identifiability` of a ``fit-static`` result under the config's own loss, on the
    first ``clips`` training clips rendered whole from a fresh state; the report is added to
    the result's JSON file (``identifiability``) and returned."""
    import torch

    from .batch import render_batch
    from .train import build_chain, build_loss, prepare_data

    chain = build_chain(config)
    dataset = prepare_data(config, progress=False).train
    loss_fn = build_loss(config)
    pairs = [dataset[i] for i in range(min(clips, len(dataset)))]

    def evaluate(thetas: np.ndarray) -> np.ndarray:
        total = np.zeros(len(thetas))
        with torch.no_grad():
            for audio, target in pairs:
                rendered = torch.from_numpy(render_batch(chain, thetas, np.ascontiguousarray(audio.numpy())))
                total += [float(loss_fn(out[None], target[None])) for out in rendered]
        return total / len(pairs)

    report = identifiability(
        evaluate,
        np.asarray(result["normalised"], np.float32),
        np.asarray(result["defaults"], np.float32),
        result["parameters"],
    )
    path = Path(result["path"])
    saved = json.loads(path.read_text())
    saved["identifiability"] = report
    atomic_write_bytes(path, json.dumps(saved, indent=2).encode())
    return report


def identifiability_table(
    report: Dict[str, Any], plain: Optional[Sequence[float]] = None, units: Optional[Sequence[str]] = None
) -> str:
    """The report as a text table, then one warning line per barely constrained parameter."""
    from ._text import format_table

    rows, warnings = [], []
    for k, row in enumerate(report["parameters"]):
        value = "" if plain is None else f"{plain[k]:.6g}{(' ' + units[k]) if units and units[k] else ''}"
        rows.append(
            [
                row["parameter"],
                value,
                f"{row['normalised']:.4f}",
                f"{row['rise']:.4g}",
                f"{row['contrast']:.3g}",
                f"±{row['range']:.3f}",
                row["status"],
            ]
        )
        if row["status"] == "barely constrained":
            warnings.append(
                f"warning: {row['parameter']} is barely constrained: moving it by ±{report['step']:g} raises "
                f"the loss by {row['rise']:.3g}, {row['contrast']:.2g}x what is left of it "
                f"({report['yardstick']:.3g}); its value is a guess"
            )
    text = format_table(
        ["parameter", "value", "normalised", f"loss rise ±{report['step']:g}", "rise/residual", "±range", ""],
        rows,
        align="lrrrrrl",
    )
    return "\n".join([text, *warnings])


# ---------------------------------------------------------------------------- files


def _pairs(input_path: Path, reference_path: Path) -> List[Tuple[str, Path, Path]]:
    if input_path.is_dir() != reference_path.is_dir():
        raise ValueError("INPUT and REFERENCE must both be files or both be folders (paired by file name)")
    if not input_path.is_dir():
        for path in (input_path, reference_path):
            if not path.is_file():
                raise FileNotFoundError(f"no such audio file: {path}")
        return [(input_path.stem, input_path, reference_path)]
    from .pairs import pair_by_name

    return pair_by_name(input_path, reference_path)


def _loss_kind(kind: str, input_samples: int, reference_samples: int, sample_rate: float) -> str:
    if kind == "auto":
        return "aligned" if abs(input_samples - reference_samples) <= _LENGTH_TOLERANCE_S * sample_rate else "style"
    if kind == "aligned" and abs(input_samples - reference_samples) > _LENGTH_TOLERANCE_S * sample_rate:
        raise ValueError(
            f"the aligned loss needs an input and a reference of the same length; got {input_samples} "
            f"and {reference_samples} samples (use --loss style for other material)"
        )
    return kind


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
    from .batch import render_batch
    from .chainfile import load_chain
    from .render import parameter_units, plain_values, read_audio, read_parameter_csv, write_audio, write_parameter_csv

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    budget = DEFAULT_BUDGET[method] if budget is None else int(budget)
    if budget < 1:
        raise ValueError(f"--budget must be >= 1, got {budget}")
    input_path, reference_path = Path(input_path), Path(reference_path)
    pairs = _pairs(input_path, reference_path)
    out_dir = Path(out_dir) if out_dir else Path("runs") / "match" / input_path.stem
    chain, config = load_chain(chain_path)
    if chain.num_parameters == 0:
        raise ValueError(f"{chain_path}: the chain learns no parameter (set 'learned')")
    rate, channels = int(round(chain.sample_rate)), chain.channels
    names = list(chain.learned)

    inputs, losses, references, kinds = [], [], [], []
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

    plain = plain_values(chain, theta[None])[0]
    units = parameter_units(chain)
    outputs = [render_batch(chain, theta, audio, threads)[0] for audio in inputs]
    if input_path.is_dir():
        for (name, _, _), output in zip(pairs, outputs):
            write_audio(out_dir / "output" / f"{name}.wav", output, rate)
        paths["audio"] = out_dir / "output"
    else:
        paths["audio"] = out_dir / "output.wav"
        write_audio(paths["audio"], outputs[0], rate)
    paths["plot"] = out_dir / "match.png"
    plot_match(
        paths["plot"],
        rate,
        inputs[0],
        outputs[0],
        references[0],
        names,
        start,
        theta,
        report,
        history,
        title=f"{pairs[0][1].name} matched to {pairs[0][2].name} ({method}, {kinds[0]} loss)",
    )
    written = []
    if presets:
        from .presets import write_presets

        written = write_presets(chain, out_dir / "presets", f"match-{input_path.stem}", theta)
        paths["presets"] = out_dir / "presets"
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
        "parameters": names,
        "units": units,
        "normalised": [float(v) for v in theta],
        "plain": [float(v) for v in plain],
        "start": [float(v) for v in start],
        "start_loss": report["start_loss"],
        "final_loss": report["loss"],
        "identifiability": report,
        "history": history,
        "presets": [
            {
                "plugin": p.plugin,
                "name": p.name,
                "format": p.format,
                "path": None if p.path is None else str(p.path),
                "note": p.note,
            }
            for p in written
        ],
        "chain": config,
    }
    paths["settings"] = out_dir / "settings.json"
    atomic_write_bytes(paths["settings"], json.dumps(result, indent=2).encode())
    result["paths"] = paths
    return result


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


# ---------------------------------------------------------------------------- the plot


def plot_match(
    path: PathLike,
    sample_rate: int,
    before: np.ndarray,
    after: np.ndarray,
    reference: np.ndarray,
    names: Sequence[str],
    start: np.ndarray,
    theta: np.ndarray,
    report: Dict[str, Any],
    history: Sequence[Dict[str, float]],
    title: str = "",
) -> None:
    """PNG: long-term spectra of input (before), output (after) and reference; their 0.4 s
    loudness over time; the loss per iteration; the normalised settings (start and found),
    coloured by how well the loss determines them. Written atomically."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 7.5))
    curves = [
        ("input (before)", before, "tab:gray"),
        ("output (after)", after, "tab:blue"),
        ("reference", reference, "tab:orange"),
    ]
    n_fft = 4096
    for label, audio, colour in curves:
        mono = np.asarray(audio, np.float64).mean(axis=0)
        spectrum = (
            torch.stft(
                torch.from_numpy(mono),
                n_fft,
                n_fft // 4,
                window=torch.hann_window(n_fft, dtype=torch.float64),
                return_complex=True,
            )
            .abs()
            .pow(2)
            .mean(dim=1)
            .numpy()
        )
        frequencies = np.arange(len(spectrum)) * sample_rate / n_fft
        axes[0, 0].semilogx(
            frequencies[1:], 10 * np.log10(spectrum[1:] + 1e-12), label=label, color=colour, linewidth=1
        )
        block = int(0.4 * sample_rate)
        hop = block // 4
        power = np.array([np.mean(mono[i : i + block] ** 2) for i in range(0, max(1, len(mono) - block + 1), hop)])
        axes[0, 1].plot(
            np.arange(len(power)) * hop / sample_rate,
            10 * np.log10(power + 1e-12),
            color=colour,
            linewidth=1,
            label=label,
        )
    axes[0, 0].set(xlabel="Hz", ylabel="dB", title="long-term spectrum")
    axes[0, 0].set_xlim(20, sample_rate / 2)
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].set(xlabel="time (s)", ylabel="dBFS (0.4 s mean square)", title="level over time")
    if history:
        axes[1, 0].plot([h["best"] for h in history], label="best so far")
        axes[1, 0].plot([h["median"] for h in history], label="population median", alpha=0.7)
        axes[1, 0].set_yscale("log")
        axes[1, 0].legend(fontsize=8)
    else:
        axes[1, 0].bar(["start", "found"], [report["start_loss"], report["loss"]], color=["tab:gray", "tab:blue"])
    axes[1, 0].set(xlabel="iteration", ylabel="loss", title=f"loss {report['start_loss']:.4g} -> {report['loss']:.4g}")
    status_colour = {
        "well determined": "tab:green",
        "weak": "tab:olive",
        "barely constrained": "tab:red",
        "not at a minimum": "tab:purple",
    }
    positions = np.arange(len(names))
    colours = [status_colour[row["status"]] for row in report["parameters"]]
    axes[1, 1].scatter(start, positions, marker="|", color="black", s=120, label="start")
    axes[1, 1].errorbar(
        theta, positions, xerr=[row["range"] for row in report["parameters"]], fmt="none", ecolor=colours, alpha=0.5
    )
    axes[1, 1].scatter(theta, positions, c=colours, s=30, label="found (bar: ±range)", zorder=3)
    axes[1, 1].set_yticks(positions, [n for n in names], fontsize=7)
    axes[1, 1].set_xlim(-0.02, 1.02)
    axes[1, 1].invert_yaxis()
    axes[1, 1].set(xlabel="normalised", title="settings (green: well determined, red: barely constrained)")
    axes[1, 1].legend(fontsize=7, loc="lower right")
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
