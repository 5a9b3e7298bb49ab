"""tube_amp: clean DI guitar and bass -> the same notes through a tube preamp (ZamTube).

Inputs are notes, phrases, chords and riffs written as MIDI here and rendered with fluidsynth
from a General MIDI soundfont (electric guitars 26-28, electric basses 33-35, 0-based GM
programs), each clip's level drawn at random (the DI level decides how hard the tube is driven).
Targets are the same clips through ZamTube at fixed settings that saturate audibly
(:data:`AMP`), polarity restored (ZamTube's stage inverts) and trimmed by a fixed output gain.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from . import midi
from ._common import (
    PluginSpec,
    best_lag,
    clip_paths,
    db,
    find_soundfont,
    peak,
    progress_bar,
    render_chain,
    render_midi,
    rng,
    split_counts,
    undb,
    write_wav,
)

#: 0-based General MIDI programs: (family, name).
PROGRAMS: Dict[int, Tuple[str, str]] = {
    26: ("guitar", "Electric Guitar (jazz)"),
    27: ("guitar", "Electric Guitar (clean)"),
    28: ("guitar", "Electric Guitar (muted)"),
    33: ("bass", "Electric Bass (finger)"),
    34: ("bass", "Electric Bass (pick)"),
    35: ("bass", "Fretless Bass"),
}
KEY_RANGE = {"guitar": (40, 84), "bass": (28, 60)}
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}

#: The hidden hardware: ZamTube (urn:zamaudio:ZamTube) at fixed settings. Tube drive 9 of 11
#: with the JCM-800 tone stack: about 10 % THD on a -6 dBFS sine, a few % at -18 dBFS, clearly
#: audible crunch on chords and an obviously compressed, thickened bass.
AMP = PluginSpec(
    "urn:zamaudio:ZamTube",
    {"tubedrive": 9.0, "bass": 6.0, "mids": 5.0, "treb": 6.0, "tonestack": 4.0, "gain": 0.0, "insane": 0.0},
)
#: ZamTube inverts polarity; the target is multiplied by this to put it back in phase.
POLARITY = -1.0
#: Fixed output trim of the "amp" (dB), the same for every clip: targets stay below about -1 dBFS.
OUTPUT_TRIM_DB = -3.0
#: Each clip's input (DI) peak level is drawn uniformly from this range (dBFS).
INPUT_PEAK_DB = (-20.0, -6.0)
#: Silence between clips in the one MIDI file rendered per program (lets release tails die).
GAP_SECONDS = 2.0

SIZES = {
    "tiny": {"clips": {"train": 2, "valid": 1, "test": 1}, "seconds": (2.0, 2.0)},
    "small": {"clips": split_counts(80), "seconds": (4.0, 8.0)},
    # small's valid and test clips, three times its training clips
    "medium": {"clips": {**split_counts(80), "train": 3 * split_counts(80)["train"]}, "seconds": (4.0, 8.0)},
    "full": {"clips": split_counts(450), "seconds": (4.0, 8.0)},
}


# ---------------------------------------------------------------------------- MIDI material


def _snap(value: float) -> float:
    return round(value * 1000) / 1000


def _velocity(rand: np.random.Generator, base: float, accent: bool = False) -> int:
    return int(np.clip(round(base + rand.normal(0, 9) + (12 if accent else 0)), 20, 127))


def _scale_keys(rand: np.random.Generator, family: str) -> List[int]:
    low, high = KEY_RANGE[family]
    root = int(rand.integers(0, 12))
    scale = SCALES[rand.choice(list(SCALES))]
    return [k for k in range(low, high + 1) if (k - root) % 12 in scale]


def _notes(rand, family, start, end) -> Tuple[str, List[Tuple[float, float, int, int]]]:
    """Isolated notes, each left to ring (like single-note DI recordings)."""
    low, high = KEY_RANGE[family]
    notes, t = [], start
    while True:
        length = float(rand.uniform(0.35, 1.8))
        if t + length > end:
            break
        notes.append((t, length, int(rand.integers(low, high + 1)), _velocity(rand, rand.uniform(45, 120))))
        t += length + float(rand.uniform(0.05, 0.5))
    return "notes", notes


def _phrase(rand, family, start, end):
    """A melodic line on a scale: random walk, varied rhythm, rests and accents."""
    keys = _scale_keys(rand, family)
    beat = 60.0 / float(rand.uniform(80, 160))
    base = float(rand.uniform(55, 115))
    gate = float(rand.uniform(0.55, 1.0))
    index = int(rand.integers(len(keys) // 4, 3 * len(keys) // 4))
    notes, t, beats = [], start, 0.0
    while True:
        length = beat * float(rand.choice([0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0]))
        if t + length > end:
            break
        if rand.random() > 0.12:
            index = int(np.clip(index + rand.choice([-3, -2, -1, -1, 1, 1, 2, 3, 0]), 0, len(keys) - 1))
            accent = abs(beats - round(beats)) < 1e-6 and round(beats) % 2 == 0
            notes.append((t, length * gate, keys[index], _velocity(rand, base, accent)))
        t += length
        beats += length / beat
    return "phrase", notes


def _chords(rand, family, start, end):
    """Guitar: strummed power chords or triads on a scale's degrees."""
    keys = _scale_keys(rand, family)
    beat = 60.0 / float(rand.uniform(70, 140))
    base = float(rand.uniform(55, 115))
    power = rand.random() < 0.5
    notes, t = [], start
    while True:
        length = beat * float(rand.choice([0.5, 1.0, 1.0, 2.0]))
        if t + length > end:
            break
        roots = [k for k in keys if k <= 64]
        root = int(rand.choice(roots)) if roots else keys[0]
        shape = [0, 7, 12] if power else [0, 4 if rand.random() < 0.5 else 3, 7, 12]
        down = rand.random() < 0.7
        spread = float(rand.uniform(0.006, 0.025))
        order = shape if down else shape[::-1]
        velocity = _velocity(rand, base, down)
        for k, interval in enumerate(order):
            key = root + interval
            if key <= KEY_RANGE[family][1]:
                onset = t + k * spread
                notes.append((onset, max(0.05, length * 0.9 - k * spread), key, velocity))
        t += length
    return ("power chords" if power else "triads"), notes


def _riff(rand, family, start, end):
    """Bass: root / octave / fifth patterns over changing roots."""
    low, high = KEY_RANGE[family]
    beat = 60.0 / float(rand.uniform(80, 150))
    base = float(rand.uniform(60, 115))
    step = float(rand.choice([0.5, 1.0]))
    pattern = [[0, 0, 12, 0], [0, 7, 12, 7], [0, 0, 0, 0], [0, 12, 7, 5]][int(rand.integers(4))]
    notes, t, k = [], start, 0
    root = int(rand.integers(low, low + 12))
    while True:
        length = beat * step
        if t + length > end:
            break
        if k % 8 == 0 and k:
            root = int(np.clip(root + rand.choice([-5, -2, 0, 2, 5, 7]), low, high - 12))
        notes.append(
            (t, length * float(rand.uniform(0.6, 0.95)), root + pattern[k % 4], _velocity(rand, base, k % 4 == 0))
        )
        t += length
        k += 1
    return "riff", notes


def clip_material(seed: int, split: str, index: int, program: int, seconds: float) -> Tuple[str, list]:
    rand = rng(seed, "tube_amp", split, index)
    family = PROGRAMS[program][0]
    start = _snap(float(rand.uniform(0.03, 0.3)))
    end = seconds - min(0.6, 0.25 * seconds)
    styles = [_notes, _phrase, _chords] if family == "guitar" else [_notes, _phrase, _riff]
    style, notes = styles[int(rand.integers(len(styles)))](rand, family, start, end)
    if not notes:  # too short for the style: one long note
        notes = [(start, max(0.1, end - start), int(np.mean(KEY_RANGE[family])), 100)]
    return style, [(_snap(t), _snap(max(0.03, d)), int(k), int(v)) for t, d, k, v in notes]


# ---------------------------------------------------------------------------- build


def plan(seed: int, size: str) -> List[Dict[str, Any]]:
    spec = SIZES[size]
    clips = []
    for split, count in spec["clips"].items():
        programs = list(PROGRAMS)
        order = rng(seed, "tube_amp", "programs", split).permutation(max(count, len(programs)))
        for index in range(count):
            rand = rng(seed, "tube_amp", "clip", split, index)
            low, high = spec["seconds"]
            seconds = _snap(float(rand.uniform(low, high)))
            program = programs[int(order[index]) % len(programs)]
            style, notes = clip_material(seed, split, index, program, seconds)
            clips.append(
                {
                    "split": split,
                    "name": f"{split}_{index:04d}_{PROGRAMS[program][0]}{program}",
                    "program": program,
                    "instrument": PROGRAMS[program][1],
                    "style": style,
                    "seconds": seconds,
                    "notes": len(notes),
                    "input_peak_db": round(float(rand.uniform(*INPUT_PEAK_DB)), 3),
                    "_notes": notes,
                }
            )
    return clips


def build(
    out_dir: Path, seed: int, size: str, sample_rate: int, progress: bool, suffix: str = ".wav"
) -> Dict[str, Any]:
    soundfont = find_soundfont(size)
    clips = plan(seed, size)
    by_program: Dict[int, List[Dict[str, Any]]] = {}
    for clip in clips:
        by_program.setdefault(clip["program"], []).append(clip)
    bar = progress_bar(len(clips), "tube_amp", progress)
    lags = []
    with tempfile.TemporaryDirectory(prefix="fxgrad-tube-") as folder:
        for program, group in sorted(by_program.items()):
            # one MIDI file per program: every clip in turn, GAP_SECONDS apart
            events = [midi.program(0.0, 0, program)] + midi.channel_reset(0.0, 0)
            t = 0.5
            for clip in group:
                clip["_offset"] = t
                for onset, length, key, velocity in clip["_notes"]:
                    events.append(midi.note_on(t + onset, 0, key, velocity))
                    events.append(midi.note_off(t + onset + length, 0, key))
                t = _snap(t + clip["seconds"] + GAP_SECONDS)
            events.append(midi.control(t, 0, 7, 100))  # keeps the file (and the render) running to t
            path = Path(folder) / f"program{program}.mid"
            midi.write(path, events)
            audio = render_midi(path, soundfont, sample_rate, seconds=t).mean(axis=0, keepdims=True)
            for clip in group:
                start = int(round(clip["_offset"] * sample_rate))
                frames = int(round(clip["seconds"] * sample_rate))
                x = audio[:, start : start + frames]
                if x.shape[1] < frames:
                    x = np.pad(x, ((0, 0), (0, frames - x.shape[1])))
                level = peak(x)
                if level <= 0:
                    raise RuntimeError(f"fluidsynth rendered silence for {clip['name']} (program {program})")
                x = (x * (undb(clip["input_peak_db"]) / level)).astype(np.float32)
                y, latency = render_chain([AMP], x, sample_rate)
                y = (y * (POLARITY * undb(OUTPUT_TRIM_DB))).astype(np.float32)
                lag, corr = best_lag(x[0].astype(np.float64), y[0].astype(np.float64), 64)
                lags.append(lag)
                clip.update(
                    latency_removed=latency,
                    residual_lag=lag,
                    correlation=round(corr, 4),
                    target_peak_db=round(db(peak(y)), 3),
                    rms_change_db=round(db(np.sqrt(np.mean(y**2))) - db(np.sqrt(np.mean(x**2))), 3),
                )
                input_path, target_path = clip_paths(out_dir, clip["split"], clip["name"], suffix)
                write_wav(input_path, x, sample_rate)
                write_wav(target_path, y, sample_rate)
                bar.update(1)
    bar.close()
    for clip in clips:
        for key in [k for k in clip if k.startswith("_")]:
            del clip[key]
    return {
        "sources": [soundfont.as_dict()],
        "hidden": {
            "chain": [AMP.as_dict()],
            "polarity": POLARITY,
            "output_trim_db": OUTPUT_TRIM_DB,
            "input_peak_db_range": list(INPUT_PEAK_DB),
            "note": "fixed settings for every clip; ZamTube reports no latency and the targets are "
            "polarity-corrected: residual_lag (from cross-correlation) should be 0",
        },
        "render": {
            "fluidsynth": "-ni -q -R 0 -C 0 -g 0.3 -O float",
            "programs": {str(k): v[1] for k, v in PROGRAMS.items()},
            "downmix": "mean of fluidsynth's two channels",
        },
        "clips": clips,
    }
