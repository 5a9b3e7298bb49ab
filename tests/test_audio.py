"""fxgrad.data.audio, the package's one reader and writer, and fxgrad.base.folders, its one folder pairing:
the channel policy, resampling, what the reader says it did, and pairing by name."""

import numpy as np
import pytest
import soundfile

from fxgrad.base.folders import pair_by_name, pair_paths, split_folders
from fxgrad.data.audio import (
    channel_change,
    conversions,
    read_audio,
    read_file,
    resample,
    write_audio,
)

RATE = 8000


def write(path, frames, rate=RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_24" if path.suffix == ".flac" else "FLOAT"
    soundfile.write(str(path), np.asarray(frames, np.float32), rate, subtype=subtype)
    return path


def test_read_file_gives_channels_first_float32_and_the_rate(tmp_path):
    frames = np.stack([np.linspace(-0.5, 0.5, 300), np.full(300, 0.25)], axis=1)
    audio, rate = read_file(write(tmp_path / "x.wav", frames))
    assert rate == RATE and audio.dtype == np.float32 and audio.shape == (2, 300)
    assert audio.flags.c_contiguous
    np.testing.assert_array_equal(audio, frames.T.astype(np.float32))


def test_read_file_refuses_missing_unreadable_empty_and_non_finite_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such audio file"):
        read_file(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really audio")
    with pytest.raises(ValueError, match=r"cannot read audio file .*bad\.wav"):
        read_file(tmp_path / "bad.wav")
    with pytest.raises(ValueError, match="has no samples"):
        read_file(write(tmp_path / "empty.wav", np.zeros((0, 1))))
    with pytest.raises(ValueError, match="NaN or infinite"):
        read_file(write(tmp_path / "nan.wav", np.array([[0.0], [np.nan]])))


def test_channel_policy_copies_mono_averages_to_mono_and_keeps_first_only_when_asked():
    assert channel_change(2, 2) is None
    assert channel_change(1, 3) == "copy"
    assert channel_change(3, 1) == "average"
    assert channel_change(3, 2, keep_first_channels=True) == "first"
    with pytest.raises(ValueError, match="has 3 channels, which give 3 or 1"):
        channel_change(3, 2)
    with pytest.raises(ValueError, match=r"has 2 channels, which give 2 or fewer \(the first\) or 1"):
        channel_change(2, 4, keep_first_channels=True)


def test_read_audio_converts_channels_and_says_so(tmp_path):
    three = write(tmp_path / "three.wav", np.stack([np.full(200, v) for v in (0.1, 0.2, 0.6)], axis=1))
    mono = write(tmp_path / "mono.wav", np.full((200, 1), 0.3))
    np.testing.assert_allclose(read_audio(three, RATE, 1), np.full((1, 200), 0.3), atol=1e-7)
    np.testing.assert_array_equal(read_audio(mono, RATE, 2), np.full((2, 200), 0.3, np.float32))
    first = np.stack([np.full(200, 0.1), np.full(200, 0.2)]).astype(np.float32)
    np.testing.assert_array_equal(read_audio(three, RATE, 2, keep_first_channels=True), first)
    with pytest.raises(ValueError, match=r"three\.wav has 3 channels"):
        read_audio(three, RATE, 2)
    assert conversions(three, RATE, 1) == ["downmixed from 3 channels to mono (their average)"]
    assert conversions(mono, RATE, 2) == ["mono copied to 2 channels"]
    assert conversions(three, RATE, 2, keep_first_channels=True) == ["the first 2 of 3 channels kept"]
    assert conversions(mono, 2 * RATE, 1) == [f"resampled from {RATE} Hz to {2 * RATE} Hz"]
    assert conversions(mono, RATE, 1) == []


def test_read_audio_resamples_as_resample_does(tmp_path):
    t = np.arange(RATE) / RATE
    tone = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 880 * t)])
    path = write(tmp_path / "tone.wav", tone.T)
    read = read_audio(path, 2 * RATE, 2)
    assert read.shape == (2, 2 * RATE) and read.flags.c_contiguous
    np.testing.assert_array_equal(read, resample(tone.astype(np.float32), RATE, 2 * RATE, "HQ"))
    same = tone.astype(np.float32)
    assert resample(same, RATE, RATE, "VHQ") is same


def test_write_audio_round_trips_wav_and_flac(tmp_path):
    audio = np.stack([np.linspace(-0.5, 0.5, 400), np.linspace(0.5, -0.5, 400)]).astype(np.float32)
    write_audio(tmp_path / "x.wav", audio, RATE)
    np.testing.assert_array_equal(read_file(tmp_path / "x.wav")[0], audio)
    write_audio(tmp_path / "x.flac", audio, RATE)
    np.testing.assert_allclose(read_file(tmp_path / "x.flac")[0], audio, atol=2**-22)
    with pytest.raises(ValueError, match="write .wav or .flac"):
        write_audio(tmp_path / "x.mp3", audio, RATE)


def test_pairing_by_path_or_by_name_recursive_or_not(tmp_path):
    for folder in ("in", "out"):
        write(tmp_path / folder / "a.wav", np.zeros((10, 1)))
    write(tmp_path / "in" / "deep" / "b.wav", np.zeros((10, 1)))
    write(tmp_path / "out" / "other" / "b.flac", np.zeros((10, 1)))
    (tmp_path / "in" / ".hidden.wav").write_bytes(b"")
    pairs = pair_by_name(tmp_path / "in", tmp_path / "out")  # paths differ: paired by file name
    assert [(name, i.relative_to(tmp_path).as_posix(), t.relative_to(tmp_path).as_posix()) for name, i, t in pairs] == [
        ("a", "in/a.wav", "out/a.wav"),
        ("b", "in/deep/b.wav", "out/other/b.flac"),
    ]
    flat = pair_by_name(tmp_path / "in", tmp_path / "out", (".wav",), recursive=False)
    assert [name for name, _, _ in flat] == ["a"]
    write(tmp_path / "out" / "c.wav", np.zeros((10, 1)))
    with pytest.raises(ValueError, match=r"targets without an input \['c'\] \(c\.wav\)"):
        pair_by_name(tmp_path / "in", tmp_path / "out")
    with pytest.raises(ValueError, match="target folder does not exist"):
        pair_by_name(tmp_path / "in", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="both be files or both be folders"):
        pair_paths(tmp_path / "in", tmp_path / "out" / "a.wav")
    assert pair_paths(tmp_path / "in" / "a.wav", tmp_path / "out" / "a.wav")[0][0] == "a"


def test_split_folders_finds_input_target_and_params(tmp_path):
    (tmp_path / "inputs").mkdir()
    (tmp_path / "targets").mkdir()
    assert split_folders(tmp_path) == (tmp_path / "inputs", tmp_path / "targets", None)
    (tmp_path / "params").mkdir()
    assert split_folders(tmp_path)[2] == tmp_path / "params"
    with pytest.raises(FileNotFoundError, match="must be a folder holding input/ and target/"):
        split_folders(tmp_path / "inputs")
