"""The mastering task's engineers: who sets the hidden chain ZamComp -> ZamGEQ31 -> ZaMaximX2 per
song, drawing every setting at random (:func:`random_settings`) or choosing them from what the
mix sounds like by fixed rules (:func:`rule_settings`)."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from ._common import PluginSpec, db, render_chain, rng

#: The mastering chain, in order.
CHAIN = ("urn:zamaudio:ZamComp", "urn:zamaudio:ZamGEQ31", "urn:zamaudio:ZaMaximX2")
#: Who sets the mastering chain per song: "random" draws every setting (random_settings),
#: "rules" chooses them from the mix (rule_settings).
ENGINEERS = ("random", "rules")
#: The default: what a model of the mix can learn. The random engineer's draws are independent
#: of the mix, so no model of it closes the gap to them (docs/results.md): a control.
DEFAULT_ENGINEER = "rules"
#: The "rules" engineer: loudness target, ceiling, compression depth, EQ.
TARGET_LUFS = -14.0
MAXIM_CEILING_DB = -0.3
COMP_DEPTH_DB = 6.0
TARGET_TILT_DB_PER_OCTAVE = -4.5
EQ_MAX_DB = 6.0
ENGINEER_NOTES = {
    "random": "settings drawn per song (songs[].chain)",
    "rules": "settings chosen per song from its mix by fixed rules (songs[].chain, songs[].engineer): ZamComp "
    f"threshold {COMP_DEPTH_DB:g} dB under the loud passages, ZamGEQ31 half-way towards a "
    f"{TARGET_TILT_DB_PER_OCTAVE:g} dB/octave balance, ZaMaximX2 driven to {TARGET_LUFS:g} LUFS",
}
# fmt: off
#: ZamGEQ31's 29 band centres (Hz), band1 .. band29.
GEQ_BANDS_HZ = (
    32, 40, 50, 63, 79, 100, 126, 158, 200, 251, 316, 398, 501, 631, 794,
    999, 1257, 1584, 1997, 2514, 3165, 3986, 5017, 6318, 7963, 10032, 12662, 16081, 20801,
)
# fmt: on


def _log_uniform(rand, low, high) -> float:
    return float(np.exp(rand.uniform(np.log(low), np.log(high))))


def random_eq_curve(rand: np.random.Generator, sample_rate: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """A smooth random mastering EQ sampled at ZamGEQ31's band centres: low shelf, low-mid bell,
    presence bell, high shelf. Bands at or above 0.45 x the sample rate stay at 0 dB."""
    shapes = {
        "low_shelf": {"hz": _log_uniform(rand, 60, 250), "db": float(rand.uniform(-4, 5))},
        "low_mid": {
            "hz": _log_uniform(rand, 200, 600),
            "db": float(rand.uniform(-5, 1.5)),
            "octaves": float(rand.uniform(0.5, 1.2)),
        },
        "presence": {
            "hz": _log_uniform(rand, 1500, 5000),
            "db": float(rand.uniform(-3, 4)),
            "octaves": float(rand.uniform(0.5, 1.2)),
        },
        "high_shelf": {"hz": _log_uniform(rand, 4000, min(9000, 0.4 * sample_rate)), "db": float(rand.uniform(-3, 6))},
    }
    settings = {"master": 0.0}
    for k, f in enumerate(GEQ_BANDS_HZ, start=1):
        if f >= 0.45 * sample_rate:
            settings[f"band{k}"] = 0.0
            continue
        x = np.log2(f)
        g = shapes["low_shelf"]["db"] / (1 + np.exp(3 * (x - np.log2(shapes["low_shelf"]["hz"]))))
        g += shapes["high_shelf"]["db"] / (1 + np.exp(-3 * (x - np.log2(shapes["high_shelf"]["hz"]))))
        for bell in ("low_mid", "presence"):
            s = shapes[bell]
            g += s["db"] * np.exp(-0.5 * ((x - np.log2(s["hz"])) / s["octaves"]) ** 2)
        settings[f"band{k}"] = round(float(np.clip(g, -12, 12)), 1)
    return settings, {name: {k: round(v, 2) for k, v in s.items()} for name, s in shapes.items()}


def random_settings(seed: int, song: str, sample_rate: int) -> Tuple[List[PluginSpec], Dict[str, Any]]:
    """The "random" engineer: every setting drawn per song (from the seed and the song's name),
    whatever the music: ZamComp threshold -34 to -20 dB, ratio 1.5-5, attack 3-30 ms, release
    50-400 ms, knee 0-6 dB, makeup 0-6 dB; a smooth random EQ curve; ZaMaximX2 threshold -14 to
    -7 dB, ceiling -1 to -0.1 dB, release 10-60 ms."""
    rand = rng(seed, "mastering", "settings", song)
    comp = {
        "att": round(_log_uniform(rand, 3, 30), 2),
        "rel": round(_log_uniform(rand, 50, 400), 1),
        "kn": round(float(rand.uniform(0, 6)), 2),
        "rat": round(_log_uniform(rand, 1.5, 5), 2),
        "thr": round(float(rand.uniform(-34, -20)), 2),
        "mak": round(float(rand.uniform(0, 6)), 2),
        "slew": 1.0,
        "sidech": 0.0,
    }
    eq, shapes = random_eq_curve(rand, sample_rate)
    maxim = {
        "thresh": round(float(rand.uniform(-14, -7)), 2),
        "ceil": round(float(rand.uniform(-1.0, -0.1)), 2),
        "rel": round(_log_uniform(rand, 10, 60), 2),
    }
    specs = [PluginSpec(CHAIN[0], comp), PluginSpec(CHAIN[1], eq), PluginSpec(CHAIN[2], maxim)]
    return specs, {"eq_shapes": shapes}


def band_levels_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Long-term level (dB) of the mono ``audio`` in third-octave bands at ZamGEQ31's centres,
    from a Welch power spectrum (8192-point Hann frames, half overlap)."""
    x = np.asarray(audio, np.float64).reshape(-1)
    n = 8192
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 2]
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(n), axis=-1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    levels = []
    for f in GEQ_BANDS_HZ:
        inside = (freqs >= f / 2 ** (1 / 6)) & (freqs < f * 2 ** (1 / 6))
        levels.append(10 * np.log10(power[inside].sum() + 1e-20) if inside.any() else -200.0)
    return np.asarray(levels)


def rule_eq_curve(levels_db: np.ndarray, sample_rate: int) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """The engineer's EQ: half of the way from the mix's long-term third-octave balance towards a
    reference tilt (TARGET_TILT_DB_PER_OCTAVE through the mix's level at 1 kHz), smoothed over
    neighbouring bands, within +-EQ_MAX_DB. Bands below 40 Hz or at/above 0.45 x the sample rate
    stay at 0 dB."""
    x = np.log2(np.asarray(GEQ_BANDS_HZ, np.float64) / 1000.0)
    usable = (np.asarray(GEQ_BANDS_HZ) >= 40) & (np.asarray(GEQ_BANDS_HZ) < 0.45 * sample_rate)
    reference = np.interp(0.0, x, levels_db) + TARGET_TILT_DB_PER_OCTAVE * x
    correction = np.where(usable, 0.5 * (reference - levels_db), 0.0)
    smooth = np.convolve(np.pad(correction, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    gains = np.where(usable, np.clip(smooth, -EQ_MAX_DB, EQ_MAX_DB), 0.0)
    settings = {"master": 0.0}
    settings.update({f"band{k}": round(float(g), 1) for k, g in enumerate(gains, start=1)})
    return settings, {
        "band_levels_db": [round(float(v), 1) for v in levels_db],
        "tilt_db_per_octave": TARGET_TILT_DB_PER_OCTAVE,
    }


def rule_settings(mix: np.ndarray, sample_rate: int) -> Tuple[List[PluginSpec], Dict[str, Any]]:
    """The "rules" engineer: the settings for one song chosen from its unmastered ``mix``
    (1, samples) by fixed rules, so that they follow from what the music sounds like: the compressor's threshold
    sits COMP_DEPTH_DB under the mix's loud passages (95th percentile of 400 ms RMS), the EQ pulls
    the long-term balance towards a reference tilt, and the maximiser drives the result to
    TARGET_LUFS."""
    from ...nn.metrics import integrated_loudness

    x = np.asarray(mix, np.float64).reshape(-1)
    window = int(0.4 * sample_rate)
    blocks = x[: len(x) // window * window].reshape(-1, window)
    loud_db = db(float(np.percentile(np.sqrt(np.mean(blocks**2, axis=1)), 95)))
    comp = {
        "att": 10.0,
        "rel": 120.0,
        "kn": 3.0,
        "rat": 2.5,
        "thr": round(float(np.clip(loud_db - COMP_DEPTH_DB, -40, -10)), 2),
        "mak": 0.0,
        "slew": 1.0,
        "sidech": 0.0,
    }
    eq, eq_info = rule_eq_curve(band_levels_db(x, sample_rate), sample_rate)
    before_maximiser, _ = render_chain(
        [PluginSpec(CHAIN[0], comp), PluginSpec(CHAIN[1], eq)], np.asarray(mix, np.float32), sample_rate
    )
    level = integrated_loudness(before_maximiser[0], sample_rate)
    drive = float(np.clip(TARGET_LUFS - level, 0.0, 24.0))
    maxim = {"thresh": round(MAXIM_CEILING_DB - drive, 2), "ceil": MAXIM_CEILING_DB, "rel": 25.0}
    specs = [PluginSpec(CHAIN[0], comp), PluginSpec(CHAIN[1], eq), PluginSpec(CHAIN[2], maxim)]
    return specs, {
        "engineer": {
            "loud_passages_dbfs": round(loud_db, 2),
            "loudness_before_maximiser_lufs": round(level, 2),
            "maximiser_drive_db": round(drive, 2),
            **eq_info,
        }
    }
