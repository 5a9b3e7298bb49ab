"""``fxgrad evaluate``: a trained model against the baselines on held-out clips.

Every clip of the evaluation set is rendered four ways and compared with its target:

- ``model``: the chain with the model's per-frame automation (:class:`fxgrad.train.model.TrainedModel`);
- ``model, smoothed``: the same automation smoothed over time (with ``smoothing``; its setting
  chosen on the validation split by :func:`choose_smoothing_on`, never on the clips evaluated);
- ``unprocessed``: the input itself;
- ``plugin defaults``: the chain at its preset values;
- ``best static``: the chain at the single setting :func:`fxgrad.train.fit_static` found on the
  training set (``static.json`` beside the checkpoint, or ``--static``).

Metrics (lower is better): MFCC cosine distance (DeepAFx's measure), multi-resolution STFT error
and integrated-loudness error in LU. When the evaluation folder has a ``params/`` folder of hidden
trajectories (synthetic data), the normalised mean absolute parameter error is reported too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..base.files import PathLike, atomic_write_bytes
from ..base.folders import split_folders
from ..base.text import format_table
from ..data.stream import PairedAudioDataset
from ..host.render import render_automation, render_static
from ..io.params import read_parameter_csv
from ..nn.metrics import loudness_error_db, mfcc_cosine_distance, mrstft_error
from ..nn.smoothing import Smoothing, choose_smoothing
from ..train.model import TrainedModel
from ..train.static import load_static

METRICS = ("mfcc_cosine", "mrstft", "loudness_lu")
METRIC_TITLES = {"mfcc_cosine": "MFCC cos dist", "mrstft": "MRSTFT err", "loudness_lu": "loudness err (LU)"}
SMOOTHED = "model, smoothed"
SYSTEMS = ("model", SMOOTHED, "best static", "plugin defaults", "unprocessed")
#: The settings ``--smooth auto`` tries on the validation clips (``None``: no smoothing, first so
#: that it wins ties).
SMOOTHING_CANDIDATES = (
    None,
    "one-pole:20",
    "one-pole:50",
    "one-pole:100",
    "one-pole:200",
    "one-pole:400",
    "median:50",
    "median:150",
)


def metrics(output: np.ndarray, target: np.ndarray, sample_rate: int) -> Dict[str, float]:
    loudness = math.nan
    if target.shape[-1] >= int(0.4 * sample_rate):
        try:
            loudness = loudness_error_db(output, target, sample_rate)
        except ImportError:  # scipy missing
            loudness = math.nan
    return {
        "mfcc_cosine": mfcc_cosine_distance(output, target, sample_rate, over="coefficients"),
        "mrstft": mrstft_error(output, target),
        "loudness_lu": loudness,
    }


def evaluate(
    checkpoint: PathLike,
    data: PathLike,
    static: Optional[PathLike] = None,
    max_clips: Optional[int] = None,
    output: Optional[PathLike] = None,
    progress: bool = True,
    device: str = "cpu",
    smoothing: Optional[Smoothing] = None,
) -> Dict[str, Any]:
    """Evaluate ``checkpoint`` on the clips in ``data`` (a folder with input/ and target/);
    with ``smoothing``, the model's automation is also rendered smoothed (system
    ``"model, smoothed"``).

    Returns ``{"systems": {system: {metric: mean}}, "clips": [...], "parameter_mae": ...}`` and
    writes it as JSON to ``output`` (default: ``evaluation.json`` beside the checkpoint).
    """
    from tqdm import tqdm

    model = TrainedModel.from_checkpoint(checkpoint, device)
    inputs, targets, params = split_folders(data)
    dataset = PairedAudioDataset(inputs, targets, model.sample_rate, model.channels, cache_size=0)
    static_path = Path(static) if static else Path(checkpoint).parent / "static.json"
    static_theta = load_static(static_path, model.names) if (static or static_path.is_file()) else None
    count = len(dataset) if max_clips is None else min(len(dataset), max_clips)
    chain = model.new_chain()
    # The plugins' own defaults (pinned values applied), not model.defaults: a run started from
    # fit-static settings holds those, not the defaults.
    plugin_defaults = np.asarray(chain.get_learned(), np.float32)
    clips: List[Dict[str, Any]] = []
    errors: Dict[str, List[float]] = {"model": [], SMOOTHED: [], "best static": [], "plugin defaults": []}
    for index in tqdm(range(count), desc="evaluate", unit="clip", disable=not progress, leave=False):
        audio, target = (t.numpy() for t in dataset[index])
        baselines = {"best static": static_theta, "plugin defaults": plugin_defaults}
        row, trajectories = _render_clip(model, chain, audio, target, baselines, smoothing)
        row = {"clip": dataset.names[index], **row}
        hidden_path = params / f"{dataset.names[index]}.csv" if params is not None else None
        if hidden_path is not None and hidden_path.is_file():
            hidden = read_parameter_csv(hidden_path, model.names)
            frames = min(len(hidden), len(trajectories["model"]))
            trajectories.update({name: theta[None] for name, theta in baselines.items() if theta is not None})
            row["parameter_mae"] = {}
            for system, trajectory in trajectories.items():
                # A static setting is compared with the whole hidden trajectory, a predicted
                # one with the frames both have.
                error = np.abs(trajectory - hidden if system in baselines else trajectory[:frames] - hidden[:frames])
                error = error.mean(axis=0)
                errors[system].append(error)
                if system in ("model", SMOOTHED):
                    row["parameter_mae"][system] = error.tolist()
        clips.append(row)

    systems = [s for s in SYSTEMS if s in clips[0]]
    summary = {s: {m: float(np.nanmean([c[s][m] for c in clips])) for m in METRICS} for s in systems}
    result: Dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "clips": clips,
        "systems": summary,
        "parameters": model.names,
        "static": str(static_path) if static_theta is not None else None,
        "smoothing": None if smoothing is None else str(smoothing),
    }
    if errors["model"]:
        result["parameter_mae"] = {s: np.mean(v, axis=0).tolist() for s, v in errors.items() if v}
    out_path = Path(output) if output else Path(checkpoint).parent / "evaluation.json"
    atomic_write_bytes(out_path, json.dumps(result, indent=2).encode())
    result["path"] = out_path
    return result


def _render_clip(
    model: TrainedModel,
    chain,
    audio: np.ndarray,
    target: np.ndarray,
    baselines: Dict[str, Any],
    smoothing: Optional[Smoothing],
) -> tuple:
    """One clip rendered by every system (each from the chain's reset state) and scored:
    ``({system: metrics}, {"model" (and "model, smoothed"): thetas (frames, P)})``."""
    rendered: Dict[str, np.ndarray] = {}
    chain.reset()
    rendered["model"], thetas = model.render(audio, chain)
    trajectories = {"model": thetas}
    if smoothing is not None:
        trajectories[SMOOTHED] = model.smoothed(thetas, smoothing)  # the same prediction, smoothed
        chain.reset()
        rendered[SMOOTHED] = render_automation(chain, audio, trajectories[SMOOTHED], model.frame_size)
    for name, theta in baselines.items():
        if theta is not None:
            chain.reset()
            rendered[name] = render_static(chain, audio, theta, model.frame_size)
    rendered["unprocessed"] = audio
    return {system: metrics(out, target, model.sample_rate) for system, out in rendered.items()}, trajectories


def choose_smoothing_on(
    checkpoint: PathLike,
    valid: PathLike,
    candidates=SMOOTHING_CANDIDATES,
    metric: str = "mrstft",
    max_clips: Optional[int] = None,
    device: str = "cpu",
    progress: bool = True,
) -> tuple:
    """The smoothing of the model's automation with the lowest mean ``metric`` on the clips of
    ``valid`` (the validation split: choosing on the test clips would fit the choice to them).
    Returns ``(best Smoothing or None, {candidate: mean metric})``."""
    from tqdm import tqdm

    model = TrainedModel.from_checkpoint(checkpoint, device)
    inputs, targets, _ = split_folders(valid)
    dataset = PairedAudioDataset(inputs, targets, model.sample_rate, model.channels, cache_size=0)
    count = len(dataset) if max_clips is None else min(len(dataset), max_clips)
    clips = [tuple(t.numpy() for t in dataset[i]) for i in range(count)]
    predicted = [model.predict(audio) for audio, _ in clips]  # once; each candidate smooths it
    chain = model.new_chain()

    def score(setting: Optional[Smoothing]) -> float:
        values = []
        for (audio, target), thetas in zip(clips, predicted):
            thetas = model.smoothed(thetas, setting)
            chain.reset()
            values.append(
                metrics(render_automation(chain, audio, thetas, model.frame_size), target, model.sample_rate)[metric]
            )
        return float(np.nanmean(values))

    bar = tqdm(list(candidates), desc="smoothing on validation", unit="setting", disable=not progress, leave=False)
    return choose_smoothing(bar, score)


SMOOTHING_DEFAULT = "auto"
"""What ``evaluate`` and ``apply`` smooth with unless told: the setting the run's validation clips
prefer (docs/results/method.md: it beat no smoothing on MFCC and MRSTFT error on every task)."""


def smoothing_file(checkpoint: PathLike) -> Path:
    """Where the validation's choice for ``checkpoint`` is kept: ``best.pt`` -> ``best.smoothing.json``."""
    return Path(checkpoint).with_suffix(".smoothing.json")


def resolve_smoothing(
    checkpoint: PathLike,
    spec: Optional[str] = SMOOTHING_DEFAULT,
    valid: Optional[PathLike] = None,
    device: str = "cpu",
    progress: bool = True,
    note=print,
) -> Optional[Smoothing]:
    """The smoothing ``spec`` names for ``checkpoint``, one rule for ``evaluate`` and ``apply``:
    ``"none"`` (or None): none; ``"KIND:MS"``: that; ``"auto"``: the candidate with the lowest
    MRSTFT error on the validation clips (``valid``, default the run's own split:
    :func:`validation_folder`), chosen once per checkpoint and kept in :func:`smoothing_file`
    (made again when the checkpoint or the folder changes). A run without validation clips gets
    none, with a ``note`` saying so."""
    if spec is None or spec == "none":
        return None
    if spec != "auto":
        return Smoothing.parse(spec)
    from ..train.checkpoint import load_checkpoint

    try:
        folder = Path(valid) if valid else validation_folder(checkpoint)
    except FileNotFoundError as error:
        note(f"no smoothing: {error}")
        return None
    key = {"checksum": load_checkpoint(checkpoint).get("checksum"), "valid": str(folder.resolve())}
    cache = smoothing_file(checkpoint)
    if cache.is_file():
        kept = json.loads(cache.read_text())
        if all(kept.get(k) == v for k, v in key.items()):
            chosen = kept["chosen"]
            note(f"smoothing: {chosen} (chosen on {folder}, kept in {cache})")
            return None if chosen == "none" else Smoothing.parse(chosen)
    best, scores = choose_smoothing_on(checkpoint, folder, device=device, progress=progress)
    listed = ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
    note(f"smoothing on {folder} (MRSTFT err): {listed}; chosen: {best or 'none'}")
    record = {**key, "metric": "mrstft", "scores": scores, "chosen": str(best) if best else "none"}
    atomic_write_bytes(cache, json.dumps(record, indent=2).encode())
    return best


def validation_folder(checkpoint: PathLike) -> Path:
    """The validation split a checkpoint's run used: its ``data.valid`` input folder's parent,
    or the ``valid`` folder of its synthetic data (a :class:`FileNotFoundError` if it had none)."""
    from ..config.schema import Config
    from ..train.checkpoint import load_checkpoint

    config = Config.from_dict(load_checkpoint(checkpoint)["config"])
    if config.data.synthetic is not None:
        folder = Path(config.data.synthetic.folder) if config.data.synthetic.folder else config.run_dir / "data"
        candidate = folder / "valid"
    elif config.data.valid is not None:
        candidate = Path(config.data.valid.input).parent
    else:
        candidate = None
    if candidate is None or not candidate.is_dir():
        raise FileNotFoundError(
            f"{checkpoint}: its run had no validation folder to choose the smoothing on "
            f"({candidate or 'no data.valid'}); pass --valid DIR or --smooth KIND:MS"
        )
    return candidate


METRIC_UNITS = {"mfcc_cosine": "", "mrstft": "", "loudness_lu": " LU"}

#: A baseline error below this fraction of the unprocessed input's error counts as near zero:
#: a margin relative to it would read like "-944116%".
NEAR_ZERO = 0.01


def margin(model_value: float, baseline_value: float) -> float:
    """Relative improvement of the model over a baseline in percent (positive: model better)."""
    if not baseline_value or math.isnan(baseline_value):
        return math.nan
    return 100.0 * (baseline_value - model_value) / baseline_value


def near_zero(baseline_value: float, scale: float) -> bool:
    """Whether a baseline's error is too close to zero for a relative margin: below
    :data:`NEAR_ZERO` times ``scale`` (the unprocessed input's error on the same metric), or
    zero when the scale is unknown."""
    if math.isnan(baseline_value):
        return False
    if not scale or math.isnan(scale):
        return baseline_value == 0.0
    return abs(baseline_value) < NEAR_ZERO * abs(scale)


def format_margin(metric: str, model_value: float, baseline_value: float, scale: float) -> str:
    """The model's margin over a baseline on ``metric`` as text, positive when the model is
    better: relative (``+79.7%``), or the absolute difference in the metric's units
    (``-0.0012 LU abs``) when the baseline is :func:`near_zero` against ``scale``."""
    if math.isnan(model_value) or math.isnan(baseline_value):
        return "n/a"
    if near_zero(baseline_value, scale):
        return f"{baseline_value - model_value:+.4g}{METRIC_UNITS[metric]} abs"
    return f"{margin(model_value, baseline_value):+.1f}%"


def margins(
    systems: Dict[str, Dict[str, float]], baseline: str = "best static", model: str = "model"
) -> Dict[str, str]:
    """:func:`format_margin` of ``model`` over ``baseline`` for every metric, scaled by the
    unprocessed input's errors."""
    scale = systems.get("unprocessed", {})
    return {m: format_margin(m, systems[model][m], systems[baseline][m], scale.get(m, math.nan)) for m in METRICS}


def report(result: Dict[str, Any]) -> str:
    """The evaluation as text: metric means per system, the model's margin over the best
    static settings, and the parameter errors when known."""
    systems = result["systems"]
    rows = []
    for system, values in systems.items():
        rows.append([system, *[f"{values[m]:.4f}" for m in METRICS]])
    lines = [
        f"{len(result['clips'])} clips from {result['data']} (lower is better)",
        format_table(["system", *[METRIC_TITLES[m] for m in METRICS]], rows),
    ]
    if "best static" in systems:
        for model in ("model", SMOOTHED):
            if model not in systems:
                continue
            texts = margins(systems, model=model)
            gains = ", ".join(f"{METRIC_TITLES[m]} {texts[m]}" for m in METRICS)
            smoothing = f" ({result['smoothing']})" if model == SMOOTHED else ""
            lines.append(f"{model}{smoothing} vs best static settings: {gains} (positive = model better)")
        if any(t.endswith(" abs") for t in texts.values()):
            lines.append(
                f"(abs: the absolute difference, where the best static error is under {NEAR_ZERO:.0%} of "
                "the unprocessed input's and a relative margin means nothing)"
            )
    else:
        lines.append(
            "no best-static baseline: run `fxgrad fit-static CONFIG` (writes static.json beside the checkpoint)"
        )
    return "\n".join(lines + parameter_error_lines(result))


def parameter_error_lines(result: Dict[str, Any]) -> List[str]:
    """The table of each system's mean absolute parameter error against the hidden trajectory
    (synthetic data), as lines of text; none when ``result`` has no ``parameter_mae``."""
    if "parameter_mae" not in result:
        return []
    rows = [
        [system, *[f"{v:.3f}" for v in values], f"{np.mean(values):.3f}"]
        for system, values in result["parameter_mae"].items()
    ]
    return [
        "parameter error against the hidden trajectory (mean absolute, normalised units):",
        format_table(["system", *result["parameters"], "mean"], rows),
    ]
