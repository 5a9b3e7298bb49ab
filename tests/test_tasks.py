"""The task data builders (fxgrad.data.tasks): tiny data sets of the three DeepAFx tasks, built from
the real sources installed by apt, checked for pairing, alignment, the hidden processing, the
breath regions, reproducibility and clear errors when a source is missing."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from fxgrad.data import tasks
from fxgrad.data.tasks import SourceMissingError, breath_removal, mastering, tube_amp

RATE = 22050


def _build_or_skip(task, out, seed, **options):
    try:
        return tasks.build(task, out, seed=seed, size="tiny", sample_rate=RATE, progress=False, **options)
    except SourceMissingError as error:  # the apt packages are not installed here
        pytest.skip(f"{task}: {error}")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """task -> {"a": dir (seed 0), "b": dir (seed 0 again), "c": dir (seed 1)}, built lazily."""
    cache = {}

    def get(task):
        if task not in cache:
            root = tmp_path_factory.mktemp(task)
            dirs = {"a": root / "a", "b": root / "b", "c": root / "c"}
            _build_or_skip(task, dirs["a"], 0)
            _build_or_skip(task, dirs["b"], 0)
            _build_or_skip(task, dirs["c"], 1)
            cache[task] = dirs
        return cache[task]

    return get


def _pairs(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    for clip in manifest["clips"]:
        x, rx = soundfile.read(folder / clip["split"] / "input" / f"{clip['name']}.wav", dtype="float64")
        y, ry = soundfile.read(folder / clip["split"] / "target" / f"{clip['name']}.wav", dtype="float64")
        assert rx == ry == RATE
        yield clip, x, y


def _spectrum_db(x):
    frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::512] * np.hanning(1024)
    return 10 * np.log10(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-12)


def _best_lag(x, y, max_lag=32):
    lags = range(-max_lag, max_lag + 1)
    values = [np.dot(x[max(0, -k) : len(x) - max(0, k)], y[max(0, k) : len(y) - max(0, -k)]) for k in lags]
    return list(lags)[int(np.argmax(np.abs(values)))]


def _rms_db(x):
    return 10 * np.log10(np.mean(np.square(x)) + 1e-20)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_layout_pairs_and_alignment(built, task):
    folder = built(task)["a"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == task and manifest["seed"] == 0 and manifest["size"] == "tiny"
    assert manifest["sources"] and all(s["licence"] and s["apt_package"] for s in manifest["sources"])
    for split in ("train", "valid", "test"):
        names = {c["name"] for c in manifest["clips"] if c["split"] == split}
        assert names, f"no {split} clips"
        for role in ("input", "target"):
            assert {p.stem for p in (folder / split / role).glob("*.wav")} == names
    for clip, x, y in _pairs(folder):
        assert x.ndim == 1 and y.ndim == 1, "mono files"
        assert len(x) == len(y) == round(clip["seconds"] * RATE), clip["name"]
        assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))
        assert 1e-3 < np.max(np.abs(x)) < 1.0 and 1e-4 < np.max(np.abs(y)) < 1.0, clip["name"]
        # plugin latencies are 44-480 samples; filters' phase leaves a few samples at most
        assert _best_lag(x, y) == pytest.approx(0, abs=8), f"{clip['name']}: target not aligned with input"
    # the trainer's loader takes the folders as they are
    from fxgrad.data.stream import PairedAudioDataset

    dataset = PairedAudioDataset(folder / "train" / "input", folder / "train" / "target", RATE)
    assert len(dataset) == manifest["clips_per_split"]["train"]


@pytest.mark.parametrize("task", ["tube_amp", "mastering"])
def test_targets_differ_from_inputs(built, task):
    for clip, x, y in _pairs(built(task)["a"]):
        # not a mere gain change: what the best scalar gain leaves over
        gain = np.dot(x, y) / np.dot(x, x)
        residual = _rms_db(y - gain * x) - _rms_db(y)
        assert residual > -30, f"{clip['name']}: target is nearly a scaled input ({residual:.1f} dB)"
        # and a different spectral balance (tone stack / mastering EQ) or level
        spectral = np.mean(np.abs((_spectrum_db(y) - _rms_db(y)) - (_spectrum_db(x) - _rms_db(x)))[5:400])
        level = abs(_rms_db(y) - _rms_db(x))
        assert spectral > 1.0 or level > 3.0, f"{clip['name']}: {spectral:.2f} dB spectral, {level:.2f} dB level"
    if task == "mastering":
        for clip, x, y in _pairs(built(task)["a"]):
            assert _rms_db(y) > _rms_db(x) + 1, f"{clip['name']}: the master is not louder"
            assert clip["residual_lag"] == pytest.approx(0, abs=8)


def test_mastering_engineer_settings_follow_the_mix():
    """The hidden mastering settings are a function of the mix: a dark mix gets more treble than a
    bright one, a quieter (more dynamic) mix more maximiser drive, and both land near the
    loudness target."""
    from fxgrad.data.tasks import mastering_engineers as mastering
    from fxgrad.data.tasks._common import render_chain
    from fxgrad.nn.metrics import integrated_loudness

    rand = np.random.default_rng(0)
    white = rand.standard_normal(RATE * 6)
    dark = np.convolve(white, np.ones(8) / 8, mode="same")  # about -12 dB at 2.7 kHz, -inf at 2.75
    bursts = white * np.repeat(rand.uniform(0.05, 1.0, 12), RATE // 2)  # same spectrum, more dynamics
    settings = {}
    for name, audio in (("white", white), ("dark", dark), ("bursts", bursts)):
        mix = (audio * (10 ** (-12 / 20)) / np.abs(audio).max()).astype(np.float32)[None]
        specs, info = mastering.rule_settings(mix, RATE)
        settings[name] = ({spec.uri: spec.settings for spec in specs}, info["engineer"])
        if name != "white":
            master, _ = render_chain(specs, mix, RATE)
            assert integrated_loudness(master[0], RATE) == pytest.approx(mastering.TARGET_LUFS, abs=2.5)
    geq = mastering.CHAIN[1]
    treble = [f"band{k}" for k, f in enumerate(mastering.GEQ_BANDS_HZ, start=1) if 3000 <= f < 8000]
    assert all(settings["dark"][0][geq][b] > settings["white"][0][geq][b] + 2 for b in treble)
    assert settings["bursts"][1]["maximiser_drive_db"] > settings["white"][1]["maximiser_drive_db"] + 1


def test_mastering_engineers(built, tmp_path):
    default = json.loads((built("mastering")["a"] / "manifest.json").read_text())
    assert default["engineer"] == "rules" and default["hidden"]["engineer"] == "rules"
    assert all("engineer" in song and song["engineer"]["maximiser_drive_db"] > 0 for song in default["songs"])
    drawn = _build_or_skip("mastering", tmp_path / "random", 0, engineer="random")
    assert drawn["engineer"] == "random" and all("eq_shapes" in song for song in drawn["songs"])
    assert [song["chain"] for song in drawn["songs"]] != [song["chain"] for song in default["songs"]]
    with pytest.raises(ValueError, match="unknown engineer 'expert'"):
        tasks.build("mastering", tmp_path / "x", size="tiny", engineer="expert", progress=False)
    with pytest.raises(ValueError, match="mastering task only"):
        tasks.build("tube_amp", tmp_path / "y", size="tiny", engineer="rules", progress=False)


def test_breaths_present_in_inputs_and_removed_in_targets(built):
    folder = built("breath_removal")["a"]
    kinds = set()
    for clip, x, y in _pairs(folder):
        assert clip["events"], f"{clip['name']}: no breath or lip smack"
        mask = np.zeros(len(x), bool)
        for event in clip["events"]:
            kinds.add(event["type"])
            region = slice(event["start"], event["end"])
            assert 0 <= event["start"] < event["end"] <= len(x)
            length = (event["end"] - event["start"]) / RATE
            if event["type"] == "breath":
                assert 0.19 <= length <= 0.61
            else:
                assert 0.004 <= length <= 0.031
            present, left = _rms_db(x[region]), _rms_db(y[region])
            assert present > -75, f"{clip['name']}: {event['type']} at {event['start']} is inaudible ({present:.1f} dB)"
            assert present - left >= 15, (
                f"{clip['name']}: {event['type']} only {present - left:.1f} dB down in the target"
            )
            guard = int(0.01 * RATE)
            mask[max(0, event["start"] - guard) : event["end"] + guard] = True
        # elsewhere the input is the target: same speech, same room tone
        assert np.max(np.abs(x[~mask] - y[~mask])) < 1e-3 * np.max(np.abs(y))
        # speech is there
        assert clip["phrases"] and _rms_db(y) > -45
    assert "breath" in kinds


@pytest.mark.parametrize("task", tasks.TASKS)
def test_reproducible_from_the_seed(built, task):
    dirs = built(task)
    files_a = sorted(p.relative_to(dirs["a"]) for p in dirs["a"].rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(dirs["b"]) for p in dirs["b"].rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (dirs["a"] / rel).read_bytes() == (dirs["b"] / rel).read_bytes(), f"{rel} differs for the same seed"
    manifest_c = json.loads((dirs["c"] / "manifest.json").read_text())
    assert manifest_c["seed"] == 1
    differing = 0
    for clip in manifest_c["clips"]:
        path_a = dirs["a"] / clip["split"] / "input" / f"{clip['name']}.wav"
        path_c = dirs["c"] / clip["split"] / "input" / f"{clip['name']}.wav"
        differing += not path_a.is_file() or path_a.read_bytes() != path_c.read_bytes()
    assert differing > 0, "seed 1 gave the same inputs as seed 0"


def test_rebuild_is_skipped_and_cli_runs(built, capsys):
    folder = built("tube_amp")["a"]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.wav")}
    assert tasks.main(["build", "tube_amp", str(folder), "--size", "tiny", "--seed", "0"]) == 0
    assert "already holds" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.wav")} == before


def test_flac_output_matches_the_wav_one(built, tmp_path):
    reference = built("tube_amp")["a"]
    manifest = _build_or_skip("tube_amp", tmp_path / "flac", 0, audio_format="flac")
    assert manifest["audio_format"] == "flac"
    for clip in manifest["clips"]:
        for role in ("input", "target"):
            wav, _ = soundfile.read(reference / clip["split"] / role / f"{clip['name']}.wav", dtype="float64")
            flac, rate = soundfile.read(
                tmp_path / "flac" / clip["split"] / role / f"{clip['name']}.flac", dtype="float64"
            )
            assert rate == RATE and np.max(np.abs(wav - flac)) <= 1 / 32768 + 1e-9
    from fxgrad.data.stream import PairedAudioDataset

    assert len(PairedAudioDataset(tmp_path / "flac" / "train" / "input", tmp_path / "flac" / "train" / "target", RATE))


@pytest.mark.parametrize(
    "task, variable, package",
    [
        ("tube_amp", "FXGRAD_SOUNDFONT_DIR", "timgm6mb-soundfont"),
        ("breath_removal", "FXGRAD_SPEECH_DIR", "asterisk-core-sounds-en"),
        ("mastering", "FXGRAD_MIDI_DIR", "openttd-openmsx"),
    ],
)
def test_missing_source_names_the_package(tmp_path, monkeypatch, capsys, task, variable, package):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(variable, str(empty))
    with pytest.raises(SourceMissingError, match=package):
        tasks.build(task, tmp_path / "out", size="tiny", progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert tasks.main(["build", task, str(tmp_path / "out"), "--size", "tiny", "--quiet"]) == 1
    assert package in capsys.readouterr().err


def test_missing_fluidsynth_names_the_package(tmp_path, monkeypatch):
    if not Path("/usr/share/sounds/sf2/TimGM6mb.sf2").is_file() and not os.environ.get("FXGRAD_SOUNDFONT_DIR"):
        pytest.skip("no TimGM6mb soundfont")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SourceMissingError, match="apt-get install --no-install-recommends fluidsynth"):
        tasks.build("tube_amp", tmp_path / "out", size="tiny", progress=False)


def test_unknown_task_and_size(tmp_path):
    with pytest.raises(ValueError, match="tube_amp"):
        tasks.build("reverb", tmp_path)
    with pytest.raises(ValueError, match="tiny"):
        tasks.build("tube_amp", tmp_path, size="huge")


def test_medium_keeps_the_small_held_out_clips_and_adds_training_material():
    # medium exists so that a longer run is scored on the very clips a small run was: the plans
    # (notes, prompts, songs, clip positions) of valid and test match, training has 2.5-3x more
    try:
        songs, _ = mastering.find_songs()
    except SourceMissingError as error:
        pytest.skip(f"mastering: {error}")
    plans = {
        "tube_amp": lambda size: tube_amp.plan(0, size),
        "breath_removal": lambda size: breath_removal.plan(0, size),
        "mastering": lambda size: [
            {"split": split, "song": path.name, "clips": count} for split, path, count in mastering.plan(songs, 0, size)
        ],
    }
    for task, plan in plans.items():
        small, medium = plan("small"), plan("medium")
        for split in ("valid", "test"):
            assert [c for c in medium if c["split"] == split] == [c for c in small if c["split"] == split], task
        count = {
            size: sum(c.get("clips", 1) for c in p if c["split"] == "train")
            for size, p in (("small", small), ("medium", medium))
        }
        assert 2.5 * count["small"] <= count["medium"] <= 3 * count["small"], (task, count)
    training_songs = {c["song"] for c in plans["mastering"]("medium") if c["split"] == "train"}
    assert training_songs == {p.name for p in mastering.song_splits(songs)["train"]}
