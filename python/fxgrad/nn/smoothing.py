"""Smoothing a predicted parameter trajectory over time, and choosing how much on validation clips.

A model predicts one parameter vector per frame; frame-to-frame jitter in those predictions is
audible (zipper noise, a pumping threshold) and costs on the metrics, so the original DeepAFx
evaluation smoothed the predictions before rendering. Two filters, both on normalised values
(frames, P) in [0, 1], their length given in milliseconds and converted to frames with the frame
hop and the sample rate:

- ``"one-pole"``: a one-pole low-pass with time constant ``ms``, run forward and then backward
  over the whole trajectory (zero phase: no lag, and a step becomes a symmetric S-curve). Each
  output is a convex combination of inputs, so values stay in [0, 1] and a constant is kept.
- ``"median"``: a running median over a window of ``ms`` (rounded to an odd number of frames,
  the ends padded with the edge values): removes isolated spikes and keeps steps sharp.

``ms = 0`` is the identity for both. The setting is chosen on the validation split with
:func:`choose_smoothing`, never on the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Tuple, Union

import numpy as np

KINDS = ("one-pole", "median")


@dataclass(frozen=True)
class Smoothing:
    """One smoothing setting: ``kind`` (one of :data:`KINDS`) and its length ``ms`` (the
    one-pole's time constant, or the median's window), in milliseconds; ``ms = 0`` is none."""

    kind: str
    ms: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"smoothing kind must be one of {KINDS}, got {self.kind!r}")
        if isinstance(self.ms, bool) or not isinstance(self.ms, (int, float, np.integer, np.floating)):
            raise ValueError(f"smoothing length must be a number of milliseconds, got {self.ms!r}")
        if not math.isfinite(self.ms) or self.ms < 0:
            raise ValueError(f"smoothing length must be a finite number of milliseconds >= 0, got {self.ms!r}")

    @classmethod
    def parse(cls, text: str) -> "Smoothing":
        """``"KIND:MS"`` (``"one-pole:40"``, ``"median:100"``) as given to ``--smooth``."""
        kind, colon, ms = str(text).partition(":")
        try:
            value = float(ms)
        except ValueError:
            value = math.nan
        if not colon or math.isnan(value):
            raise ValueError(f"smoothing must be KIND:MS with KIND one of {KINDS} and MS in milliseconds, got {text!r}")
        return cls(kind.strip(), value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.ms:g}"

    def apply(self, thetas: np.ndarray, hop_samples: int, sample_rate: float) -> np.ndarray:
        """:func:`smooth` with this setting."""
        return smooth(thetas, self.kind, self.ms, hop_samples, sample_rate)


def smooth(thetas: np.ndarray, kind: str, ms: float, hop_samples: int, sample_rate: float) -> np.ndarray:
    """Smooth a parameter trajectory over time.

    Args:
        thetas: (frames, P) normalised parameter values in [0, 1], one row per frame.
        kind: ``"one-pole"`` (zero-phase forward-backward one-pole low-pass, time constant
            ``ms``) or ``"median"`` (running median over a window of ``ms``).
        ms: time constant or window in milliseconds, >= 0 (0: returned unchanged).
        hop_samples: samples between consecutive frames (the frame size).
        sample_rate: in Hz.

    Returns:
        float32 (frames, P) in [0, 1], a new array.

    Raises ``ValueError`` for an unknown kind, a negative or non-finite ``ms``, a hop or sample
    rate that is not positive, or ``thetas`` not a finite (frames, P) array in [0, 1].
    """
    setting = Smoothing(kind, ms)
    if isinstance(hop_samples, bool) or int(hop_samples) != hop_samples or hop_samples < 1:
        raise ValueError(f"hop_samples must be a positive whole number of samples, got {hop_samples!r}")
    if not sample_rate > 0 or not math.isfinite(sample_rate):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    values = np.array(thetas, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"thetas must be shaped (frames, parameters) with frames >= 1, got {np.shape(thetas)}")
    if not np.isfinite(values).all():
        raise ValueError("thetas contains NaN or Inf")
    if values.min(initial=0.0) < 0.0 or values.max(initial=0.0) > 1.0:
        raise ValueError(
            f"thetas must be normalised values in [0, 1], got values from {values.min():g} to {values.max():g}"
        )
    frames = setting.ms * 1e-3 * sample_rate / hop_samples  # the length in frames
    if setting.kind == "one-pole":
        return _one_pole_zero_phase(values, frames)
    return _running_median(values, frames)


def _one_pole_zero_phase(values: np.ndarray, time_constant_frames: float) -> np.ndarray:
    """Forward then backward ``y[n] = y[n-1] + (1 - a) (x[n] - y[n-1])``, ``a = exp(-1 / tau)``,
    each pass started at its first input (so a constant passes through untouched)."""
    if time_constant_frames <= 0:
        return values
    pole = math.exp(-1.0 / time_constant_frames)
    out = values.astype(np.float64)
    for order in (range(1, len(out)), range(len(out) - 2, -1, -1)):
        step = 1 if order.step > 0 else -1
        for n in order:
            previous = out[n - step]
            out[n] = previous + (1.0 - pole) * (out[n] - previous)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _running_median(values: np.ndarray, window_frames: float) -> np.ndarray:
    """Median over an odd window of about ``window_frames`` frames centred on each frame."""
    half = int(round(window_frames)) // 2
    if half == 0:
        return values
    padded = np.pad(values, ((half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # (frames, P, window)
    return np.median(windows, axis=-1).astype(np.float32)


Candidate = Union[Smoothing, str, None]


def choose_smoothing(
    candidates: Iterable[Candidate], score: Callable[[Smoothing | None], float]
) -> Tuple[Smoothing | None, Dict[str, float]]:
    """The candidate with the lowest ``score`` (e.g. the validation loss or MFCC distance of
    the model's renders with that smoothing; lower is better), and every candidate's score.

    Args:
        candidates: :class:`Smoothing` settings, ``"KIND:MS"`` strings, or ``None`` (no
            smoothing); ties go to the earlier candidate, so list ``None`` first to prefer not
            smoothing when it makes no difference.
        score: called once per candidate with the :class:`Smoothing` (or ``None``); score the
            validation split, never the test split, or the choice is fitted to the test.

    Returns:
        ``(best, {str(candidate): score})``, ``"none"`` naming the unsmoothed candidate.
    """
    settings = [c if c is None or isinstance(c, Smoothing) else Smoothing.parse(c) for c in candidates]
    if not settings:
        raise ValueError("choose_smoothing needs at least one candidate")
    scores: Dict[str, float] = {}
    best, best_score = settings[0], math.inf
    for setting in settings:
        value = float(score(setting))
        scores["none" if setting is None else str(setting)] = value
        if value < best_score:  # NaN never wins
            best, best_score = setting, value
    return best, scores
