"""Real audio for bench/match_cases.py, from the Debian packages the Makefile installs: speech
(asterisk-core-sounds-en-g722, Allison's prompts), music (openttd-openmsx's MIDI songs, every
part together through fluidsynth and FluidR3_GM), a clean electric guitar (tube_amp's phrases
and chords through fluidsynth) and drums (the percussion part of OpenMSX songs).

Each kind is made once, ``seconds`` long at ``rate``, stereo float32 (2, N) peaking at -3 dBFS,
and kept as ``KIND-SECONDS-RATE.npy`` in a cache folder (default runs/bench/match_material),
which is all that a machine without the packages needs (bench/README.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np

KINDS = ("speech", "music", "guitar", "drums")
SONG = "5432gone_redfarn.mid"  # OpenMSX: a full arrangement with drums from its first bar
SONG_START_S = 20.0


def _normalised(audio: np.ndarray, rate: int) -> np.ndarray:
    from fxgrad.data.tasks._common import fade

    audio = np.ascontiguousarray(audio, np.float32)
    if audio.ndim == 1:
        audio = np.stack([audio, audio])
    fade(audio, int(0.01 * rate))
    return (audio * (10 ** (-3 / 20) / max(float(np.abs(audio).max()), 1e-9))).astype(np.float32)


def _speech(seconds: float, rate: int) -> np.ndarray:
    """Prompts one after the other (leading and trailing silence cut, 80 ms apart)."""
    import soxr

    from fxgrad.data.tasks.breath_removal import decode, find_speech, list_prompts, trim

    folder, codec, _ = find_speech()
    prompts = [p for p in list_prompts(folder, codec) if 1.0 < p["seconds"] < 4.0][:40]
    pieces: List[np.ndarray] = []
    total = 0
    for audio, source_rate in decode(prompts, codec).values():
        piece = soxr.resample(trim(audio, source_rate), source_rate, rate).astype(np.float32)
        pieces += [piece, np.zeros(int(0.08 * rate), np.float32)]
        total += len(piece) + int(0.08 * rate)
        if total >= seconds * rate:
            break
    return np.concatenate(pieces)[: int(seconds * rate)]


def _song(seconds: float, rate: int, drums_only: bool) -> np.ndarray:
    from fxgrad.data.tasks import midi
    from fxgrad.data.tasks._common import find_soundfont, render_midi
    from fxgrad.data.tasks.mastering import find_songs

    files, _ = find_songs()
    song = midi.read(next(f for f in files if f.name == SONG))
    begin, end = SONG_START_S, SONG_START_S + seconds
    events = [midi.gm_reset(0.1)]
    for part in song.parts:
        if drums_only and not part.is_drums:
            continue
        events += midi.channel_reset(0.2, part.channel) + [midi.program(0.3, part.channel, part.program)]
        events += midi.excerpt(part.events, begin, end, 0.5)
    # every voice silenced after the excerpt: a held note would keep fluidsynth rendering
    events += [midi.control(0.55 + seconds, c, n, 0) for c in range(16) for n in (123, 120)]
    events.append(midi.control(1.0 + seconds, 0, 7, 100))
    with tempfile.TemporaryDirectory(prefix="fxgrad-bench-") as folder:
        path = Path(folder) / "song.mid"
        midi.write(path, events)
        audio = render_midi(path, find_soundfont("full"), rate, seconds=1.0 + seconds)
    start = int(0.5 * rate)
    return audio[:, start : start + int(seconds * rate)]


def _guitar(seconds: float, rate: int) -> np.ndarray:
    """Clean electric guitar (GM program 27): tube_amp's material, phrases and chords."""
    from fxgrad.data.tasks import midi
    from fxgrad.data.tasks._common import find_soundfont, render_midi
    from fxgrad.data.tasks.tube_amp import clip_material

    events = [midi.program(0.0, 0, 27)] + midi.channel_reset(0.0, 0)
    t, index = 0.5, 0
    while t < 0.5 + seconds:
        _, notes = clip_material(7, "train", index, 27, 3.0)
        for onset, length, key, velocity in notes:
            events += [midi.note_on(t + onset, 0, key, velocity), midi.note_off(t + onset + length, 0, key)]
        t, index = t + 3.0, index + 1
    events.append(midi.control(t + 0.5, 0, 7, 100))
    with tempfile.TemporaryDirectory(prefix="fxgrad-bench-") as folder:
        path = Path(folder) / "guitar.mid"
        midi.write(path, events)
        audio = render_midi(path, find_soundfont("full"), rate, seconds=t + 0.5)
    start = int(0.5 * rate)
    return audio[:, start : start + int(seconds * rate)].mean(axis=0)


def material(kind: str, seconds: float, rate: int, cache: Path) -> np.ndarray:
    """Stereo float32 (2, N) audio of ``kind``, from the cache or made (and cached)."""
    if kind not in KINDS:
        raise ValueError(f"material must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(cache) / f"{kind}-{seconds:g}-{rate}.npy"
    if path.is_file():
        return np.load(path)
    if kind == "speech":
        audio = _speech(seconds, rate)
    elif kind == "guitar":
        audio = _guitar(seconds, rate)
    else:
        audio = _song(seconds, rate, drums_only=kind == "drums")
    audio = _normalised(audio, rate)
    if audio.shape[-1] != int(seconds * rate):
        raise RuntimeError(f"{kind}: made {audio.shape[-1]} samples, wanted {int(seconds * rate)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, audio)
    return audio


def materials(seconds: float, rate: int, cache: Path) -> Dict[str, np.ndarray]:
    return {kind: material(kind, seconds, rate, cache) for kind in KINDS}
