"""mastering: "unmastered" multitrack mixes -> a mastering chain's output, settings per song.

Songs are the OpenMSX MIDI arrangements (the OpenTTD music set). Each song is split into stems by
(track, channel); every stem is rendered alone with fluidsynth (all stems of a song in one run,
one after the other, a GM reset between them), then mixed with random gains and pans and
normalised to -12 dBFS peak: the unmastered mix. The target is the whole mix through a
mastering chain of other plugins, ZamComp -> ZamGEQ31 -> ZaMaximX2, with settings an "engineer"
sets per song (:mod:`.mastering_engineers`): chosen from what the mix sounds like by fixed rules
(``engineer="rules"``, the default) or drawn at random (``"random"``); recorded in the
manifest; latency removed. Clips are non-overlapping excerpts of the songs, the
same excerpt of mix and master. Songs are split into train/valid/test by name (the same split
whatever the seed).
"""

from __future__ import annotations

import concurrent.futures
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from . import midi
from ._common import (
    PluginSpec,
    Source,
    SourceMissingError,
    _search_dirs,
    best_lag,
    clip_paths,
    db,
    find_soundfont,
    peak,
    progress_bar,
    render_chain,
    render_midi,
    rng,
    undb,
    write_wav,
)
from .mastering_engineers import (
    CHAIN,
    DEFAULT_ENGINEER,
    ENGINEER_NOTES,
    random_settings,
    rule_settings,
)

MIDI_DIRS_ENV = "FXGRAD_MIDI_DIR"
MIDI_DIRS = ("/usr/share/games/openttd/baseset/openmsx",)
MIDI_LICENCE = "GPL-2.0 (OpenMSX authors, see readme.txt of the package)"

MIX_PEAK_DB = -12.0
STEM_GAIN_DB = (-9.0, 3.0)
#: Pan position in [-1, 1] (constant-power law, unity in the centre).
STEM_PAN = (-0.6, 0.6)
#: Silence between two stems in the one MIDI file rendered per song.
GAP_SECONDS = 2.0
#: Each excerpt is mastered with (up to) this much of the mix before it, so that the chain's
#: envelopes have settled (its memory is well under a second).
PREROLL_SECONDS = 2.0

SIZES = {
    # songs per split (None: all), clips per song per split (None: one per 10 s of song), seconds
    "tiny": {
        "songs": {"train": 1, "valid": 1, "test": 1},
        "clips": {"train": 2, "valid": 1, "test": 1},
        "seconds": (2.0, 2.0),
        "window": ("first", 8.0),
    },
    "small": {
        "songs": {"train": 10, "valid": 3, "test": 3},
        "clips": {"train": 5, "valid": 2, "test": 2},
        "seconds": (5.0, 9.0),
        "window": ("random", 60.0),
    },
    "full": {
        "songs": {"train": None, "valid": None, "test": None},
        "clips": {"train": None, "valid": None, "test": None},
        "seconds": (5.0, 9.0),
        "window": None,
    },
}
# small's valid and test clips; every training song (25), as many clips each
SIZES["medium"] = {**SIZES["small"], "songs": {**SIZES["small"]["songs"], "train": None}}


def find_songs() -> Tuple[List[Path], Source]:
    dirs = _search_dirs(MIDI_DIRS_ENV, MIDI_DIRS)
    for folder in dirs:
        files = sorted(folder.glob("*.mid")) if folder.is_dir() else []
        if len(files) >= 3:
            return files, Source("OpenMSX (OpenTTD music)", str(folder), "openttd-openmsx", MIDI_LICENCE)
    raise SourceMissingError(
        f"no OpenMSX MIDI files (at least 3 *.mid) in {', '.join(map(str, dirs))}: install them with "
        f"`apt-get install --no-install-recommends openttd-openmsx` (or point ${MIDI_DIRS_ENV} at a folder of "
        "multitrack .mid files)"
    )


def song_splits(files: List[Path]) -> Dict[str, List[Path]]:
    """A fixed split by name: the 10 % (at least one) with the lowest crc32 are test, the next
    10 % valid, the rest train."""
    ranked = sorted(files, key=lambda p: (zlib.crc32(p.stem.encode()), p.stem))
    held = max(1, int(round(0.1 * len(ranked))))
    return {"test": ranked[:held], "valid": ranked[held : 2 * held], "train": ranked[2 * held :]}


# ---------------------------------------------------------------------------- songs


def _segments(rand, song: midi.Song, count: int, seconds: Tuple[float, float], window) -> List[Tuple[float, float]]:
    """``count`` non-overlapping (start, length) excerpts spread over the song's active span (or
    over a window of it: ``(where, seconds)``, where ``"first"`` starts at the first note and
    ``"random"`` anywhere)."""
    first = min(e.time for p in song.parts for e in p.events if e.is_note_on)
    last = song.duration
    if window:
        where, span = window
        begin = first if where == "first" else float(rand.uniform(first, max(first, last - span)))
        first, last = begin, min(last, begin + span)
    lengths = [round(float(rand.uniform(*seconds)), 3) for _ in range(count)]
    span = last - first
    if span < sum(lengths):
        raise ValueError(f"{Path(song.path).name}: {span:.1f} s of music is too short for {count} clips")
    slot = span / count
    out, t = [], first
    for k, length in enumerate(lengths):
        lo = max(t, first + k * slot)
        hi = max(lo, first + (k + 1) * slot - length)
        start = round(float(rand.uniform(lo, hi)), 3)
        out.append((start, length))
        t = start + length
    return out


def render_stems(
    song: midi.Song, begin: float, end: float, soundfont: Source, sample_rate: int, folder: Path, tag: str
) -> List[np.ndarray]:
    """Every part of ``song`` from ``begin`` to ``end`` seconds rendered alone (mono, the mean of
    fluidsynth's two channels): a list of float32 arrays. The parts play one after the other in
    a single fluidsynth run, a GM reset between them; a part that starts after its song's
    beginning is given the program, controllers and held notes it had at ``begin``."""
    events: List[midi.Event] = []
    offsets = []
    length = end - begin
    for k, part in enumerate(song.parts):
        offset = round(0.5 + k * (length + GAP_SECONDS), 3)
        offsets.append(offset)
        events.append(midi.gm_reset(offset - 0.4))
        events.extend(midi.channel_reset(offset - 0.3, part.channel))
        events.append(midi.program(offset - 0.2, part.channel, part.program))
        kept = [e for e in part.events if not (e.status == 0xB0 and e.data[0] in (10, 91, 93))]  # pan, sends: ours
        events.extend(midi.excerpt(kept, begin, end, offset))
        # silence every voice after the excerpt: notes cut by the excerpt would otherwise hold
        # (a sustaining instrument never dies out, and fluidsynth renders until all voices end)
        for channel in range(16):
            events.append(midi.control(offset + length + 0.05, channel, 123, 0))
            events.append(midi.control(offset + length + 0.05, channel, 120, 0))
    stop = offsets[-1] + length + 0.5
    events.append(midi.control(stop, 0, 7, 100))
    path = folder / f"{tag}.mid"
    midi.write(path, events)
    audio = render_midi(path, soundfont, sample_rate, seconds=stop)
    frames = int(round(length * sample_rate))
    stems = []
    for offset in offsets:
        start = int(round(offset * sample_rate))
        stem = audio[:, start : start + frames].mean(axis=0, dtype=np.float32)
        if len(stem) < frames:
            stem = np.pad(stem, (0, frames - len(stem)))
        stems.append(stem)
    return stems


def _pan(position: float) -> Tuple[float, float]:
    angle = (position + 1) * np.pi / 4
    return float(np.cos(angle) * np.sqrt(2)), float(np.sin(angle) * np.sqrt(2))


def make_song(
    seed: int,
    path: Path,
    split: str,
    count: int,
    size: str,
    soundfont: Source,
    sample_rate: int,
    folder: Path,
    engineer: str = DEFAULT_ENGINEER,
) -> Dict[str, Any]:
    """One song's ``count`` clips (mix and master) with what the manifest records of it."""
    spec = SIZES[size]
    song = midi.read(path)
    rand = rng(seed, "mastering", "song", path.stem)
    segments = _segments(rand, song, count, spec["seconds"], spec["window"])
    begin = max(0.0, round(min(s for s, _ in segments) - PREROLL_SECONDS - 0.5, 3))
    end = round(max(start + length for start, length in segments) + 0.5, 3)
    stems = render_stems(song, begin, end, soundfont, sample_rate, folder, path.stem)
    mix, stem_info = _mix(rand, song, stems)
    del stems
    mono_mix = mix.mean(axis=0, keepdims=True)
    level = peak(mono_mix)
    if level <= 0:
        raise RuntimeError(f"{path.name}: the mix is silent")
    mono_mix = (mono_mix * (undb(MIX_PEAK_DB) / level)).astype(np.float32)
    if engineer == "rules":
        specs, extra = rule_settings(mono_mix, sample_rate)
    else:
        specs, extra = random_settings(seed, path.stem, sample_rate)
    clips, latency = _master(specs, mono_mix, begin, segments, split, path, sample_rate)
    return {
        "song": path.name,
        "split": split,
        "stems": stem_info,
        "rendered_s": [begin, end],
        "mix_gain_db": round(db(undb(MIX_PEAK_DB) / level), 2),
        "latency_removed": latency,
        "chain": [s.as_dict() for s in specs],
        **extra,
        "clips": clips,
    }


def _mix(rand, song: midi.Song, stems: List[np.ndarray]) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """The stems mixed to stereo at random gains and pans: ``(mix (2, samples), what each stem
    got)``."""
    mix = np.zeros((2, len(stems[0])), np.float32)
    stem_info = []
    for part, stem in zip(song.parts, stems):
        gain_db = round(float(rand.uniform(*STEM_GAIN_DB)), 2)
        pan = round(float(rand.uniform(*STEM_PAN)), 3)
        left, right = _pan(pan)
        mix[0] += (left * undb(gain_db)) * stem
        mix[1] += (right * undb(gain_db)) * stem
        stem_info.append(
            {
                "track": part.track,
                "channel": part.channel,
                "name": part.name,
                "program": "drums" if part.is_drums else part.program,
                "gain_db": gain_db,
                "pan": pan,
                "peak_dbfs_rendered": round(db(peak(stem)), 2),
            }
        )
    return mix, stem_info


def _master(
    specs: List[PluginSpec],
    mono_mix: np.ndarray,
    begin: float,
    segments: List[Tuple[float, float]],
    split: str,
    path: Path,
    sample_rate: int,
) -> Tuple[List[Dict[str, Any]], int]:
    """Each excerpt of the mix (rendered from ``begin`` seconds) mastered by fresh plugins with
    its pre-roll, latency removed: ``(clips, latency in samples)``."""
    clips = []
    latency = 0
    for k, (start, length) in enumerate(segments):
        a = int(round((start - begin) * sample_rate))
        n = int(round(length * sample_rate))
        pre = min(a, int(round(PREROLL_SECONDS * sample_rate)))
        master, latency = render_chain(specs, mono_mix[:, a - pre : a + n], sample_rate)
        x, y = mono_mix[:, a : a + n], master[:, pre : pre + n]
        lag, corr = best_lag(x[0].astype(np.float64), y[0].astype(np.float64), 300)
        clips.append(
            {
                "split": split,
                "name": f"{split}_{path.stem}_{k:02d}",
                "song": path.name,
                "start_s": start,
                "seconds": length,
                "input_rms_dbfs": round(db(np.sqrt(np.mean(x.astype(np.float64) ** 2))), 2),
                "target_rms_dbfs": round(db(np.sqrt(np.mean(y.astype(np.float64) ** 2))), 2),
                "target_peak_dbfs": round(db(peak(y)), 2),
                "residual_lag": lag,
                "correlation": round(corr, 4),
                "_x": np.ascontiguousarray(x),
                "_y": np.ascontiguousarray(y),
            }
        )
    return clips, latency


def plan(files: List[Path], seed: int, size: str) -> List[Tuple[str, Path, int]]:
    spec = SIZES[size]
    jobs = []
    for split, songs in song_splits(files).items():
        wanted = spec["songs"][split]
        order = rng(seed, "mastering", "songs", split).permutation(len(songs))
        chosen = [songs[k] for k in order][:wanted] if wanted else sorted(songs)
        for path in sorted(chosen):
            count = spec["clips"][split]
            if count is None:
                count = max(1, int(midi.read(path).duration // 10))
            jobs.append((split, path, count))
    return jobs


def build(
    out_dir: Path,
    seed: int,
    size: str,
    sample_rate: int,
    progress: bool,
    suffix: str = ".wav",
    engineer: str = DEFAULT_ENGINEER,
) -> Dict[str, Any]:
    files, source = find_songs()
    soundfont = find_soundfont(size)
    jobs = plan(files, seed, size)
    bar = progress_bar(sum(count for _, _, count in jobs), "mastering", progress)
    songs = []
    workers = max(1, min(len(jobs), os.cpu_count() or 1, 4))
    with (
        tempfile.TemporaryDirectory(prefix="fxgrad-master-") as folder,
        concurrent.futures.ThreadPoolExecutor(workers) as pool,
    ):
        futures = [
            pool.submit(make_song, seed, path, split, count, size, soundfont, sample_rate, Path(folder), engineer)
            for split, path, count in jobs
        ]
        for future in futures:  # in job order: the output does not depend on timing
            song = future.result()
            for clip in song["clips"]:
                input_path, target_path = clip_paths(out_dir, clip["split"], clip["name"], suffix)
                write_wav(input_path, clip.pop("_x"), sample_rate)
                write_wav(target_path, clip.pop("_y"), sample_rate)
                bar.update(1)
            songs.append(song)
    bar.close()
    clips = [clip for song in songs for clip in song.pop("clips")]
    return {
        "sources": [source.as_dict(), soundfont.as_dict()],
        "song_split": "by crc32(song name): lowest 10 % test, next 10 % valid, rest train (seed-independent)",
        "hidden": {
            "chain": list(CHAIN),
            "engineer": engineer,
            "note": (
                ENGINEER_NOTES[engineer] + "; each excerpt is mastered by fresh plugin instances with "
                f"{PREROLL_SECONDS:g} s of the mix before it as pre-roll; the chain's latency (ZaMaximX2 "
                "lookahead) is removed"
            ),
            "mix": {
                "peak_dbfs": MIX_PEAK_DB,
                "peak_over": "the rendered part of the song (songs[].rendered_s)",
                "stem_gain_db": list(STEM_GAIN_DB),
                "stem_pan": list(STEM_PAN),
                "downmix": "stereo mix (constant-power pans) folded to mono: (L + R) / 2",
            },
        },
        "songs": songs,
        "clips": clips,
    }
