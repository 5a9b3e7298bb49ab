"""breath_removal: speech with breaths and lip smacks -> the same speech without them.

The speech is real studio speech: the Asterisk "Allison" prompts (one speaker, already edited, so
without natural breaths). A clip strings a few prompts together with pauses; breaths
(band-passed, formant-shaped noise with an inhale envelope, 200-600 ms, 20-35 dB under the
active speech level) and lip smacks (1-3 high-passed clicks over 5-30 ms) are synthesised into
the pauses. Input = speech + room tone + events; target = speech + room tone, i.e. the
engineer's edit that removed the events. Events are made at the source rate (so they are band
limited like the speech) and the pair is resampled together.

Prompts are split into train/valid/test by file name (the same split whatever the seed), so test
speech is never heard in training.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from scipy import signal

from ..audio import read_file, resample
from ._common import (
    Source,
    SourceMissingError,
    _search_dirs,
    clip_paths,
    db,
    peak,
    progress_bar,
    rng,
    split_counts,
    undb,
    write_wav,
)

SPEECH_DIRS_ENV = "FXGRAD_SPEECH_DIR"
SPEECH_DIRS = ("/usr/share/asterisk/sounds/en_US_f_Allison", "/usr/share/asterisk/sounds/en")
SPEECH_LICENCE = "CC-BY-SA-3.0 (Allison Smith, Digium)"
#: Not speech (tones) or empty.
EXCLUDED = {"ascending-2tone", "descending-2tone", "beep", "beeperr"}
EXCLUDED_FOLDERS = {"silence"}

BREATH_SECONDS = (0.2, 0.6)
#: Breath RMS under the clip's active speech level (dB).
BREATH_DOWN_DB = (20.0, 35.0)
SMACK_SECONDS = (0.005, 0.03)
#: Lip-smack peak under the clip's speech peak (dB).
SMACK_DOWN_DB = (15.0, 30.0)
#: Room tone (same in input and target) under the active speech level (dB).
ROOM_TONE_DOWN_DB = (58.0, 68.0)
#: Peak of each clip's input, drawn uniformly (dBFS); the target gets the same gain.
INPUT_PEAK_DB = (-12.0, -3.0)
#: Probability of a breath in a pause, and of a lip smack before a phrase.
P_BREATH = 0.65
P_SMACK = 0.4

SIZES = {
    "tiny": {"clips": {"train": 2, "valid": 1, "test": 1}, "seconds": (2.0, 2.0)},
    "small": {"clips": split_counts(80), "seconds": (4.0, 8.0)},
    # small's valid and test clips, three times its training clips
    "medium": {"clips": {**split_counts(80), "train": 3 * split_counts(80)["train"]}, "seconds": (4.0, 8.0)},
    "full": {"clips": split_counts(360), "seconds": (4.0, 8.0)},
}


# ---------------------------------------------------------------------------- speech source


def _split_of(name: str) -> str:
    bucket = zlib.crc32(name.encode()) % 10
    return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


def find_speech() -> Tuple[Path, str, Source]:
    """The prompt folder and the codec to read: ``g722`` (16 kHz, decoded with ffmpeg) when the
    g722 prompts and ffmpeg are installed, else ``wav`` (8 kHz)."""
    dirs = _search_dirs(SPEECH_DIRS_ENV, SPEECH_DIRS)
    have_ffmpeg = shutil.which("ffmpeg") is not None
    wav_dir = g722_dir = None
    for folder in dirs:
        if folder.is_dir():
            if g722_dir is None and any(folder.glob("*.g722")):
                g722_dir = folder
            if wav_dir is None and any(folder.glob("*.wav")):
                wav_dir = folder
    if g722_dir is not None and have_ffmpeg:
        return (
            g722_dir,
            "g722",
            Source(
                "Asterisk core sounds (en, Allison), G.722 16 kHz",
                str(g722_dir),
                "asterisk-core-sounds-en-g722 (+ ffmpeg to decode)",
                SPEECH_LICENCE,
            ),
        )
    if wav_dir is not None:
        warnings.warn(
            "using the 8 kHz Asterisk prompts (speech band-limited to 4 kHz); install the apt packages "
            "asterisk-core-sounds-en-g722 and ffmpeg for the 16 kHz ones",
            stacklevel=3,
        )
        return (
            wav_dir,
            "wav",
            Source(
                "Asterisk core sounds (en, Allison), WAV 8 kHz",
                str(wav_dir),
                "asterisk-core-sounds-en-wav",
                SPEECH_LICENCE,
            ),
        )
    hint = (
        "the G.722 prompts are installed but ffmpeg is missing: `apt-get install --no-install-recommends ffmpeg`"
        if g722_dir is not None
        else "install them with `apt-get install --no-install-recommends asterisk-core-sounds-en-g722 ffmpeg` "
        "(16 kHz) or `apt-get install --no-install-recommends asterisk-core-sounds-en-wav` (8 kHz)"
    )
    raise SourceMissingError(
        f"no Asterisk speech prompts found in {', '.join(map(str, dirs))}: {hint} "
        f"(or point ${SPEECH_DIRS_ENV} at a folder of them)"
    )


def list_prompts(folder: Path, codec: str) -> List[Dict[str, Any]]:
    """Every usable prompt: name (relative, without suffix), path, duration from the header."""
    import soundfile

    prompts = []
    for path in sorted(folder.rglob(f"*.{codec}")):
        rel = path.relative_to(folder).with_suffix("")
        if rel.name in EXCLUDED or (rel.parts and rel.parts[0] in EXCLUDED_FOLDERS):
            continue
        if codec == "g722":
            seconds = path.stat().st_size * 2 / 16000.0  # 4 bits per sample at 16 kHz
        else:
            seconds = soundfile.info(str(path)).duration
        if seconds < 0.2:
            continue
        name = rel.as_posix()
        prompts.append({"name": name, "path": path, "seconds": seconds, "split": _split_of(name)})
    return prompts


def decode(prompts: List[Dict[str, Any]], codec: str) -> Dict[str, Tuple[np.ndarray, int]]:
    """name -> (mono float32 samples, rate)."""
    out: Dict[str, Tuple[np.ndarray, int]] = {}
    if codec == "wav":
        for p in prompts:
            audio, rate = read_file(p["path"])
            out[p["name"]] = (audio.mean(axis=0), rate)
        return out
    with tempfile.TemporaryDirectory(prefix="fxgrad-g722-") as folder:
        for start in range(0, len(prompts), 48):
            batch = prompts[start : start + 48]
            command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
            for p in batch:
                command += ["-f", "g722", "-i", str(p["path"])]
            for k in range(len(batch)):
                command += ["-map", str(k), "-c:a", "pcm_f32le", "-ac", "1", f"{folder}/{k}.wav"]
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"ffmpeg failed to decode G.722 prompts: {result.stderr.strip()}")
            for k, p in enumerate(batch):
                audio, rate = read_file(f"{folder}/{k}.wav")
                out[p["name"]] = (audio[0], rate)
    return out


def trim(audio: np.ndarray, rate: int, floor_db: float = 45.0, margin: float = 0.02) -> np.ndarray:
    """Cut the leading and trailing silence (frames more than ``floor_db`` under the loudest),
    keeping ``margin`` seconds, with 5 ms fades."""
    hop = max(1, int(0.01 * rate))
    frames = len(audio) // hop
    if frames < 2:
        return audio
    energy = 10 * np.log10(np.mean(audio[: frames * hop].reshape(frames, hop) ** 2, axis=1) + 1e-20)
    active = np.nonzero(energy > energy.max() - floor_db)[0]
    start = max(0, active[0] * hop - int(margin * rate))
    end = min(len(audio), (active[-1] + 1) * hop + int(margin * rate))
    out = audio[start:end].astype(np.float64).copy()
    n = min(int(0.005 * rate), len(out) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
    out[:n] *= ramp
    out[len(out) - n :] *= ramp[::-1]
    return out


def active_level(audio: np.ndarray, rate: int) -> float:
    """RMS (linear) over the 20-ms frames within 40 dB of the loudest: the active speech level."""
    hop = max(1, int(0.02 * rate))
    frames = len(audio) // hop
    power = np.mean(audio[: frames * hop].reshape(frames, hop) ** 2, axis=1)
    keep = power > power.max() * 1e-4
    return float(np.sqrt(np.mean(power[keep])))


# ---------------------------------------------------------------------------- events


def _band(rate, low, high, order=2):
    nyquist = rate / 2
    high = min(high, 0.92 * nyquist)
    low = min(low, 0.8 * high)
    return signal.butter(order, [low, high], btype="bandpass", fs=rate, output="sos")


def breath(rand: np.random.Generator, rate: int, n: int) -> Tuple[np.ndarray, Dict[str, Any]]:
    """An inhale: noise through a few broad formant-like bands and a broadband hiss, under an
    asymmetric envelope with slow turbulence; ``n`` samples, unit RMS."""
    nyquist = rate / 2
    noise = rand.standard_normal(n + 2048)
    formants = [
        float(rand.uniform(400, 900)),
        float(rand.uniform(1200, 2400)),
        float(rand.uniform(2500, min(4500, 0.85 * nyquist))),
    ]
    out = np.zeros(n + 2048)
    for f in formants:
        width = float(rand.uniform(0.35, 0.8)) * f
        out += float(rand.uniform(0.4, 1.0)) * signal.sosfilt(_band(rate, f - width / 2, f + width / 2), noise)
    hiss_low = float(rand.uniform(300, 800))
    out += float(rand.uniform(0.2, 0.6)) * signal.sosfilt(_band(rate, hiss_low, 0.9 * nyquist, 1), noise)
    out = out[2048:]
    t = np.linspace(0, 1, n)
    a, b = float(rand.uniform(1.2, 2.5)), float(rand.uniform(1.5, 3.5))
    envelope = t**a * (1 - t) ** b
    envelope /= envelope.max()
    wobble = signal.sosfilt(signal.butter(2, 12, fs=rate, output="sos"), rand.standard_normal(n))
    wobble /= np.abs(wobble).max() + 1e-12
    out *= envelope * (1 + 0.25 * wobble)
    out /= np.sqrt(np.mean(out**2)) + 1e-20
    return out, {"formants_hz": [round(f) for f in formants], "envelope": [round(a, 3), round(b, 3)]}


def smack(rand: np.random.Generator, rate: int, n: int) -> Tuple[np.ndarray, Dict[str, Any]]:
    """A lip smack: 1-3 decaying clicks (noise bursts or damped resonances) within ``n``
    samples, high-passed; unit peak."""
    n = max(8, int(n))
    out = np.zeros(n)
    clicks = int(rand.integers(1, 4))
    nyquist = rate / 2
    for k in range(clicks):
        at = 0 if k == 0 else int(rand.integers(0, max(1, n - int(0.002 * rate))))
        tau = float(rand.uniform(0.0004, 0.003)) * rate
        length = n - at
        decay = np.exp(-np.arange(length) / tau)
        if rand.random() < 0.5:
            burst = rand.standard_normal(length)
        else:
            f = float(rand.uniform(1500, min(5000, 0.8 * nyquist)))
            burst = np.sin(2 * np.pi * f * np.arange(length) / rate + rand.uniform(0, 2 * np.pi))
        out[at:] += float(rand.uniform(0.4, 1.0)) * burst * decay
    cutoff = float(rand.uniform(800, min(2000, 0.4 * nyquist)))
    out = signal.sosfilt(signal.butter(2, cutoff, btype="highpass", fs=rate, output="sos"), out)
    ramp = min(n // 4, int(0.001 * rate))
    if ramp > 0:
        out[-ramp:] *= np.linspace(1, 0, ramp)
    out /= np.abs(out).max() + 1e-20
    return out, {"clicks": clicks, "highpass_hz": round(cutoff)}


def room_tone(rand: np.random.Generator, rate: int, n: int) -> np.ndarray:
    """Soft pinkish noise (1/f above 100 Hz, band limited like the speech); unit RMS."""
    spectrum = np.fft.rfft(rand.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    shape = 1 / np.sqrt(np.maximum(f, 100.0))
    shape[f > 0.95 * rate / 2] = 0
    out = np.fft.irfft(spectrum * shape, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-20)


# ---------------------------------------------------------------------------- clips


def _pool(prompts: List[Dict[str, Any]], size: str, split: str, seed: int) -> List[Dict[str, Any]]:
    pool = [p for p in prompts if p["split"] == split]
    if size == "tiny":
        # short prompts only (digits, letters, short words): a few of them, fixed by the seed
        short = [p for p in pool if p["seconds"] <= 1.3]
        order = rng(seed, "breath", "tiny-pool", split).permutation(len(short))
        pool = [short[k] for k in order[:6]]
    return pool


def assemble(
    rand: np.random.Generator,
    seconds: float,
    rate: int,
    pool: List[Dict[str, Any]],
    audio: Dict[str, Tuple[np.ndarray, int]],
) -> Dict[str, Any]:
    """One clip at the source rate: speech, events, room tone, and their description."""
    total = int(round(seconds * rate))
    speech = np.zeros(total)
    # pauses[k] says whether the pause before phrase k (the last: after the last phrase) is
    # meant to hold a breath; such pauses are made long enough for the longest one
    lead_breath = bool(rand.random() < P_BREATH)
    cursor = int((rand.uniform(0.08, 0.3) + (BREATH_SECONDS[1] + 0.08 if lead_breath else 0.0)) * rate)
    phrases, pauses = [], [lead_breath]
    while True:
        remaining = total - cursor - int(0.1 * rate)
        fits = [p for p in pool if len(audio[p["name"]][0]) <= remaining]
        if not fits:
            break
        choice = fits[int(rand.integers(len(fits)))]
        x = audio[choice["name"]][0]
        speech[cursor : cursor + len(x)] = x
        phrases.append((cursor, cursor + len(x), choice["name"]))
        with_breath = bool(rand.random() < P_BREATH)
        pauses.append(with_breath)
        gap = int((rand.uniform(0.25, 0.8) + (BREATH_SECONDS[1] if with_breath else 0.0)) * rate)
        cursor += len(x) + gap
        if cursor >= total - int(0.5 * rate):
            break
    if not phrases:
        raise RuntimeError("no prompt fits the clip length")
    return {"speech": speech, "phrases": phrases, "pauses": pauses[: len(phrases) + 1]}


def make_clip(seed: int, split: str, index: int, seconds: float, rate: int, pool, audio) -> Dict[str, Any]:
    rand = rng(seed, "breath", split, index)
    clip = assemble(rand, seconds, rate, pool, audio)
    speech, phrases = clip["speech"], clip["phrases"]
    total = len(speech)
    level = active_level(speech, rate)
    speech_peak = float(np.abs(speech).max())
    events = np.zeros(total)
    described = []
    # pauses: before the first phrase, between phrases, after the last
    bounds = [(0, phrases[0][0])] + [(a[1], b[0]) for a, b in zip(phrases, phrases[1:])] + [(phrases[-1][1], total)]
    guard = int(0.04 * rate)
    for k, (start, end) in enumerate(bounds):
        free_start, free_end = start + guard, end - guard
        before_phrase = k < len(phrases)
        # a lip smack just before the next phrase
        smack_span = None
        if before_phrase and rand.random() < P_SMACK:
            length = int(rand.uniform(*SMACK_SECONDS) * rate)
            offset = int(rand.uniform(0.03, 0.15) * rate)
            s_end = free_end - offset + guard // 2
            s_start = s_end - length
            if s_start > free_start:
                smack_span = (s_start, s_end)
                free_end = s_start - guard
        breath_span = None
        length = min(int(rand.uniform(*BREATH_SECONDS) * rate), free_end - free_start)
        if clip["pauses"][k] and length >= int(BREATH_SECONDS[0] * rate):
            b_start = int(rand.integers(free_start, free_end - length + 1))
            breath_span = (b_start, b_start + length)
        for kind, make, span, down_range, reference in (
            ("breath", breath, breath_span, BREATH_DOWN_DB, level),
            ("lip_smack", smack, smack_span, SMACK_DOWN_DB, speech_peak),
        ):
            if not span:
                continue
            wave, info = make(rand, rate, span[1] - span[0])
            down = float(rand.uniform(*down_range))
            events[span[0] : span[1]] += wave[: span[1] - span[0]] * reference * undb(-down)
            described.append({"type": kind, "start": span[0], "end": span[1], "down_db": round(down, 2), **info})
    if not described:  # every clip holds at least one breath: in the longest pause
        start, end = max(bounds, key=lambda b: b[1] - b[0])
        length = min(int(BREATH_SECONDS[0] * rate), end - start - 2 * guard)
        if length > int(0.05 * rate):
            b_start = start + guard + (end - start - 2 * guard - length) // 2
            wave, info = breath(rand, rate, length)
            down = float(rand.uniform(*BREATH_DOWN_DB))
            events[b_start : b_start + length] += wave[:length] * level * undb(-down)
            described.append(
                {"type": "breath", "start": b_start, "end": b_start + length, "down_db": round(down, 2), **info}
            )
    tone_down = float(rand.uniform(*ROOM_TONE_DOWN_DB))
    tone = room_tone(rand, rate, total) * level * undb(-tone_down)
    return {
        "input": speech + tone + events,
        "target": speech + tone,
        "phrases": phrases,
        "events": sorted(described, key=lambda e: e["start"]),
        "room_tone_down_db": round(tone_down, 2),
        "active_level_dbfs": db(level),
    }


def plan(seed: int, size: str) -> List[Dict[str, Any]]:
    spec = SIZES[size]
    clips = []
    for split, count in spec["clips"].items():
        for index in range(count):
            rand = rng(seed, "breath", "clip", split, index)
            low, high = spec["seconds"]
            clips.append(
                {
                    "split": split,
                    "index": index,
                    "name": f"{split}_{index:04d}",
                    "seconds": round(float(rand.uniform(low, high)), 3),
                    "input_peak_db": round(float(rand.uniform(*INPUT_PEAK_DB)), 3),
                }
            )
    return clips


def build(
    out_dir: Path, seed: int, size: str, sample_rate: int, progress: bool, suffix: str = ".wav"
) -> Dict[str, Any]:
    folder, codec, source = find_speech()
    prompts = list_prompts(folder, codec)
    clips = plan(seed, size)
    pools = {split: _pool(prompts, size, split, seed) for split in ("train", "valid", "test")}
    for split, pool in pools.items():
        if not pool:
            raise SourceMissingError(f"{folder}: no prompts for the {split} split (is the package complete?)")
    needed = sorted({p["name"]: p for pool in pools.values() for p in pool}.values(), key=lambda p: p["name"])
    audio = decode(needed, codec)
    rates = {rate for _, rate in audio.values()}
    if len(rates) != 1:
        raise RuntimeError(f"prompts with several sample rates: {sorted(rates)}")
    source_rate = rates.pop()
    audio = {name: (trim(x, source_rate), source_rate) for name, (x, _) in audio.items()}
    bar = progress_bar(len(clips), "breath_removal", progress)
    for clip in clips:
        made = make_clip(seed, clip["split"], clip["index"], clip["seconds"], source_rate, pools[clip["split"]], audio)
        pair = np.stack([made["input"], made["target"]])
        pair = resample(pair.astype(np.float32), source_rate, sample_rate, "VHQ")
        frames = int(round(clip["seconds"] * sample_rate))
        pair = pair[:, :frames]
        if pair.shape[1] < frames:
            pair = np.pad(pair, ((0, 0), (0, frames - pair.shape[1])))
        gain = undb(clip["input_peak_db"]) / max(peak(pair[0]), 1e-9)
        pair = (pair * gain).astype(np.float32)
        scale = sample_rate / source_rate
        for event in made["events"]:
            event["start_s"] = round(event["start"] / source_rate, 5)
            event["end_s"] = round(event["end"] / source_rate, 5)
            event["start"] = int(round(event["start"] * scale))
            event["end"] = min(frames, int(round(event["end"] * scale)))
            region = slice(event["start"], event["end"])
            event["input_rms_dbfs"] = round(db(np.sqrt(np.mean(pair[0, region].astype(np.float64) ** 2))), 2)
            event["target_rms_dbfs"] = round(db(np.sqrt(np.mean(pair[1, region].astype(np.float64) ** 2))), 2)
        clip.update(
            gain_db=round(db(gain), 3),
            phrases=[
                {"prompt": name, "start_s": round(a / source_rate, 4), "end_s": round(b / source_rate, 4)}
                for a, b, name in made["phrases"]
            ],
            events=made["events"],
            room_tone_down_db=made["room_tone_down_db"],
        )
        del clip["index"]
        input_path, target_path = clip_paths(out_dir, clip["split"], clip["name"], suffix)
        write_wav(input_path, pair[:1], sample_rate)
        write_wav(target_path, pair[1:], sample_rate)
        bar.update(1)
    bar.close()
    return {
        "sources": [source.as_dict()],
        "source_sample_rate": source_rate,
        "prompt_split": "by crc32(prompt name) % 10: 0 -> test, 1 -> valid, else train (seed-independent)",
        "prompts_per_split": {split: len(pool) for split, pool in pools.items()},
        "hidden": {
            "target": "the input without the synthesised breaths and lip smacks (the engineer's edit); "
            "speech and room tone identical in input and target",
            "breath": {
                "seconds": list(BREATH_SECONDS),
                "rms_down_db_vs_active_speech": list(BREATH_DOWN_DB),
                "probability_per_pause": P_BREATH,
            },
            "lip_smack": {
                "seconds": list(SMACK_SECONDS),
                "peak_down_db_vs_speech_peak": list(SMACK_DOWN_DB),
                "probability_per_phrase": P_SMACK,
            },
            "room_tone_down_db_vs_active_speech": list(ROOM_TONE_DOWN_DB),
            "input_peak_db_range": list(INPUT_PEAK_DB),
            "event_positions": "events[].start/end are samples of the written files (end exclusive); "
            "start_s/end_s seconds",
        },
        "clips": clips,
    }
