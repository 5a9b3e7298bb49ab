"""Synthetic paired data with a hidden, time-varying automation of the effect parameters.

Each clip is a run of synthetic notes (harmonic tones, some with a noise transient) whose
loudness follows a smooth random ``level`` curve and whose brightness follows a smooth random
``tone`` curve. The target is the clip rendered through the training chain itself while the
learned parameters follow a hidden trajectory: each parameter moves between two values as one of
the curves moves between 0 and 1, e.g. a compressor threshold that rides 12 dB under the
material's level and an EQ gain that brightens the dull passages. Because the curves shape the
input audio, the trajectory is predictable from the input, as an engineer's moves are, yet no
single static setting reproduces it; and because the trajectory is known, a trained model can be
scored on how well it recovers it (``params/NAME.csv`` beside each split).

Layout written by :func:`generate`::

    FOLDER/manifest.json              the settings it was made with (regenerated when they change)
    FOLDER/{train,valid,test}/input/clip_000.wav
    FOLDER/{train,valid,test}/target/clip_000.wav
    FOLDER/{train,valid,test}/params/clip_000.csv   frame, time_s, then one normalised column per
                                                    learned parameter
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping

import numpy as np

from ..host.plugins import Chain

CURVES = ("level", "tone")
LEVEL_RANGE_DB = (-34.0, -6.0)
"""Note peak level in dBFS as ``level`` goes from 0 to 1."""


def smooth_curve(rng: np.random.Generator, samples: int, sample_rate: int, knot_seconds: float = 1.0) -> np.ndarray:
    """A random curve in [0, 1], one value per sample: uniform random values at knots every
    ``knot_seconds`` (jittered), joined by raised-cosine segments (continuous slope-free joints)."""
    spacing = knot_seconds * sample_rate
    count = int(math.ceil(samples / spacing)) + 2
    positions = np.cumsum(rng.uniform(0.7, 1.3, count) * spacing) - spacing
    values = rng.uniform(0.0, 1.0, count)
    t = np.arange(samples, dtype=np.float64)
    index = np.clip(np.searchsorted(positions, t, side="right") - 1, 0, count - 2)
    left, right = positions[index], positions[index + 1]
    phase = np.clip((t - left) / (right - left), 0.0, 1.0)
    weight = 0.5 - 0.5 * np.cos(np.pi * phase)
    return values[index] * (1.0 - weight) + values[index + 1] * weight


def make_source(
    rng: np.random.Generator, seconds: float, sample_rate: int, channels: int = 1, knot_seconds: float = 1.5
):
    """One synthetic clip: ``(audio (channels, samples) float32, {"level": curve, "tone": curve})``;
    the curves take a new random value about every ``knot_seconds``."""
    samples = int(round(seconds * sample_rate))
    curves = {
        "level": smooth_curve(rng, samples, sample_rate, knot_seconds),
        "tone": smooth_curve(rng, samples, sample_rate, knot_seconds),
    }
    audio = np.zeros(samples)
    nyquist = sample_rate / 2
    position = int(rng.integers(0, int(0.05 * sample_rate)))
    while position < samples:
        duration = rng.uniform(0.08, 0.45)
        length = min(int(duration * sample_rate), samples - position)
        t = np.arange(length) / sample_rate
        level = curves["level"][position]
        tone = curves["tone"][position]
        f0 = 55.0 * 2.0 ** (rng.integers(0, 36) / 12.0)
        rolloff = 2.3 - 1.8 * tone  # dull (steep) .. bright (flat) harmonic spectrum
        harmonics = np.arange(1, min(40, int(0.9 * nyquist / f0)) + 1)
        amplitudes = harmonics**-rolloff
        phases = rng.uniform(0, 2 * np.pi, harmonics.size)
        note = (amplitudes[:, None] * np.sin(2 * np.pi * f0 * harmonics[:, None] * t[None, :] + phases[:, None])).sum(0)
        if rng.random() < 0.35:  # a noise transient, brighter with the tone
            burst = rng.standard_normal(length) * np.exp(-t / 0.015)
            smoothing = max(1, int(round(6 * (1.0 - tone))) + 1)
            burst = np.convolve(burst, np.ones(smoothing) / smoothing, mode="same")
            note = note + 1.5 * burst * amplitudes.sum() / max(1.0, np.abs(burst).max() * 3)
        attack = np.minimum(1.0, t / 0.004)
        envelope = attack * np.exp(-t / (0.35 * duration + 0.02))
        note = note * envelope
        peak_db = LEVEL_RANGE_DB[0] + (LEVEL_RANGE_DB[1] - LEVEL_RANGE_DB[0]) * level + rng.normal(0.0, 1.0)
        note *= 10 ** (peak_db / 20) / max(np.abs(note).max(), 1e-9)
        audio[position : position + length] += note
        position += int(rng.uniform(0.5, 1.0) * duration * sample_rate) + int(rng.uniform(0.0, 0.06) * sample_rate)
    audio = np.clip(audio, -0.99, 0.99).astype(np.float32)
    return np.repeat(audio[None], channels, axis=0), curves


def normalised_value(chain: Chain, name: str, plain: float) -> float:
    """The normalised [0, 1] value of learned parameter ``name`` at ``plain`` units."""
    qualified = chain.resolve(name)
    index, _, parameter = qualified.partition(".")
    plugin = chain.plugins[int(index)]
    previous = plugin.get(parameter, normalized=True)
    try:
        plugin.set(parameter, float(plain))
        return float(plugin.get(parameter, normalized=True))
    finally:
        plugin.set(parameter, previous, normalized=True)


def hidden_automation(
    chain: Chain, hidden: Mapping[str, Mapping[str, Any]]
) -> List[Callable[[Dict[str, np.ndarray]], np.ndarray]]:
    """Turn the ``hidden`` spec into one function per learned parameter (chain order) mapping the
    curves (sampled at the frame centres) to normalised values.

    Spec per parameter (keys are learned parameter names as the chain resolves them):
    ``{curve: level|tone, from: A, to: B}`` moves from A at curve 0 to B at curve 1;
    ``{value: A}`` holds A. Values are in the plugin's plain units, or normalised with
    ``units: normalised``. ``interpolate`` says along which scale the value moves:
    ``normalised`` (default: linear in the plugin's normalised units), ``plain`` (linear in plain
    units) or ``log`` (geometric in plain units: linear in dB for a linear-gain parameter).
    """
    learned = list(chain.learned)
    by_name = {}
    for key, spec in hidden.items():
        try:
            qualified = chain.resolve(key)
        except Exception as error:
            raise ValueError(
                f"hidden automation names {key!r}, which is not a parameter of the chain: {error}"
            ) from None
        if qualified not in learned:
            raise ValueError(f"hidden automation names {key!r} ({qualified}), which is not learned; learned: {learned}")
        by_name[qualified] = (key, spec)
    missing = [name for name in learned if name not in by_name]
    if missing:
        raise ValueError(f"hidden automation must cover every learned parameter; missing {missing}")

    functions = []
    for name in learned:
        key, spec = by_name[name]
        if not isinstance(spec, Mapping):
            raise ValueError(f"hidden.{key} must be a mapping like {{curve: level, from: A, to: B}} or {{value: A}}")
        unknown = set(spec) - {"curve", "from", "to", "value", "units", "interpolate"}
        if unknown:
            raise ValueError(f"hidden.{key}: unknown keys {sorted(unknown)}")
        units = spec.get("units", "plain")
        if units not in ("plain", "normalised"):
            raise ValueError(f"hidden.{key}.units must be 'plain' or 'normalised', got {units!r}")

        def norm(value, key=key, name=name, units=units):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"hidden.{key}: {value!r} is not a number") from None
            return value if units == "normalised" else normalised_value(chain, name, value)

        if "value" in spec:
            constant = norm(spec["value"])
            functions.append(lambda curves, c=constant: np.full(len(next(iter(curves.values()))), c))
            continue
        curve = spec.get("curve")
        if curve not in CURVES or "from" not in spec or "to" not in spec:
            raise ValueError(f"hidden.{key} needs curve (one of {CURVES}), from and to; or value")
        interpolate = spec.get("interpolate", "normalised")
        if interpolate == "normalised":
            start, stop = norm(spec["from"]), norm(spec["to"])
            functions.append(lambda curves, c=curve, a=start, b=stop: a + (b - a) * curves[c])
            continue
        if interpolate not in ("plain", "log") or units != "plain":
            raise ValueError(
                f"hidden.{key}.interpolate must be 'normalised', 'plain' or 'log' (the last two "
                f"with plain units), got {interpolate!r}"
            )
        a, b = float(spec["from"]), float(spec["to"])
        if interpolate == "log" and (a <= 0 or b <= 0):
            raise ValueError(f"hidden.{key}: log interpolation needs positive from/to, got {a} and {b}")
        grid = np.linspace(0.0, 1.0, 257)
        plain = a + (b - a) * grid if interpolate == "plain" else a * (b / a) ** grid
        table = np.array([norm(v) for v in plain])
        functions.append(lambda curves, c=curve, g=grid, t=table: np.interp(curves[c], g, t))
    return functions


def trajectory(functions, curves: Dict[str, np.ndarray], frame_size: int) -> np.ndarray:
    """(frames, P) float32 normalised parameters, sampled at each frame's centre."""
    samples = len(curves["level"])
    frames = int(math.ceil(samples / frame_size))
    centres = np.minimum(np.arange(frames) * frame_size + frame_size // 2, samples - 1)
    at_centres = {name: values[centres] for name, values in curves.items()}
    return np.clip(np.stack([f(at_centres) for f in functions], axis=1), 0.0, 1.0).astype(np.float32)


def generate(
    folder: Path,
    chain_config: Mapping[str, Any],
    hidden: Mapping[str, Mapping[str, Any]],
    frame_size: int,
    clips: Mapping[str, int],
    seconds: float,
    seed: int,
    knot_seconds: float = 1.5,
    progress: bool = True,
) -> Dict[str, Path]:
    """Write the synthetic splits under ``folder`` (skipped when ``manifest.json`` shows the same
    settings) and return ``{split: folder}``."""
    from ..host.render import render_automation
    from ..io.params import write_parameter_csv
    from .audio import write_audio

    folder = Path(folder)
    manifest = {
        "generator": "fxgrad.synth/1",
        "chain": dict(chain_config),
        "hidden": {k: dict(v) for k, v in hidden.items()},
        "frame_size": int(frame_size),
        "clips": {k: int(v) for k, v in clips.items()},
        "seconds": float(seconds),
        "knot_seconds": float(knot_seconds),
        "seed": int(seed),
    }
    splits = {name: folder / name for name, count in clips.items() if count > 0}
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        try:
            if json.loads(manifest_path.read_text()) == json.loads(json.dumps(manifest)):
                return splits
        except ValueError:
            pass
    chain = Chain.from_config(chain_config)
    functions = hidden_automation(chain, hidden)
    sample_rate = int(chain.sample_rate)
    total = sum(int(v) for v in clips.values())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="generating clips", unit="clip", leave=False)
    for split_index, (split, count) in enumerate(clips.items()):
        for sub in ("input", "target", "params"):
            (folder / split / sub).mkdir(parents=True, exist_ok=True)
        for k in range(int(count)):
            rng = np.random.default_rng([int(seed), split_index, k])
            audio, curves = make_source(rng, seconds, sample_rate, chain.channels, knot_seconds)
            thetas = trajectory(functions, curves, frame_size)
            # A fresh chain per clip (not chain.clone(): the clones of some plugins drop pinned values).
            worker = Chain.from_config(chain_config)
            target = render_automation(worker, audio, thetas, frame_size)
            stem = f"clip_{k:03d}"
            write_audio(folder / split / "input" / f"{stem}.wav", audio, sample_rate)
            write_audio(folder / split / "target" / f"{stem}.wav", target, sample_rate)
            write_parameter_csv(folder / split / "params" / f"{stem}.csv", chain, thetas, frame_size)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return splits
