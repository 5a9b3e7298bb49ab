import io

import numpy as np
import pytest
import soundfile
import torch

from fxgrad.data.stream import FrameStreamer, PairedAudioDataset

RATE = 8000
FRAME = 64
CONTEXT = 256
OFFSET = (CONTEXT - FRAME) // 2
# Clip lengths in samples: exact multiples of the frame, partial last frames, one short clip.
LENGTHS = {"a": 640, "b": 300, "c": 1000, "d": 50, "e": 777}


def write_clips(root, lengths=LENGTHS, rate=RATE, channels=1, seed=0):
    """Write input/<name>.wav and target/<name>.wav; return {name: (input, target)} arrays
    shaped (channels, samples) as soundfile reads them back."""
    rng = np.random.default_rng(seed)
    (root / "input").mkdir(exist_ok=True)
    (root / "target").mkdir(exist_ok=True)
    clips = {}
    for name, length in lengths.items():
        audio = (0.5 * rng.uniform(-1, 1, (length, channels))).astype(np.float32)
        target = (-0.7 * audio).astype(np.float32)
        soundfile.write(root / "input" / f"{name}.wav", audio, rate, subtype="FLOAT")
        soundfile.write(root / "target" / f"{name}.wav", target, rate, subtype="FLOAT")
        clips[name] = (audio.T, target.T)
    return clips


@pytest.fixture
def clips(tmp_path):
    return write_clips(tmp_path)


@pytest.fixture
def dataset(tmp_path, clips):
    return PairedAudioDataset(tmp_path / "input", tmp_path / "target", RATE)


def expected_context(audio, frame_index):
    """The zero-padded context window around frame ``frame_index`` of ``audio`` (C, L)."""
    padded = np.pad(audio, ((0, 0), (CONTEXT, CONTEXT + FRAME)))
    start = CONTEXT + frame_index * FRAME - OFFSET
    return padded[:, start : start + CONTEXT]


def collect(streamer, steps):
    return [next(streamer) for _ in range(steps)]


class TestPairedAudioDataset:
    def test_pairs_by_name_and_loads_exact_samples(self, dataset, clips):
        assert dataset.names == sorted(LENGTHS)
        assert len(dataset) == len(LENGTHS)
        for index, name in enumerate(dataset.names):
            audio, target = dataset[index]
            assert audio.dtype == torch.float32 and audio.shape == (1, LENGTHS[name])
            assert dataset.num_samples(index) == LENGTHS[name]
            np.testing.assert_array_equal(audio.numpy(), clips[name][0])
            np.testing.assert_array_equal(target.numpy(), clips[name][1])

    def test_pairs_across_wav_and_flac_and_from_explicit_pairs(self, tmp_path):
        (tmp_path / "in").mkdir()
        (tmp_path / "out").mkdir()
        audio = np.linspace(-0.5, 0.5, 400)
        soundfile.write(tmp_path / "in" / "x.wav", audio, RATE)
        soundfile.write(tmp_path / "out" / "x.FLAC", audio, RATE)
        (tmp_path / "in" / "notes.txt").write_text("ignored")
        dataset = PairedAudioDataset(tmp_path / "in", tmp_path / "out", RATE)
        assert dataset.names == ["x"]
        explicit = PairedAudioDataset.from_pairs([(tmp_path / "out" / "x.FLAC", tmp_path / "in" / "x.wav")], RATE)
        torch.testing.assert_close(explicit[0][1], dataset[0][0])

    def test_missing_folder_and_unpaired_files_are_reported(self, tmp_path, clips):
        with pytest.raises(ValueError, match="target folder does not exist"):
            PairedAudioDataset(tmp_path / "input", tmp_path / "nowhere", RATE)
        (tmp_path / "target" / "c.wav").unlink()
        soundfile.write(tmp_path / "target" / "z.wav", np.zeros(100), RATE)
        with pytest.raises(ValueError, match=r"unpaired.*c\.wav.*z\.wav"):
            PairedAudioDataset(tmp_path / "input", tmp_path / "target", RATE)
        (tmp_path / "empty").mkdir()
        with pytest.raises(ValueError, match="no .wav/.flac files"):
            PairedAudioDataset(tmp_path / "empty", tmp_path / "target", RATE)

    def test_unreadable_file_is_reported(self, tmp_path, clips):
        (tmp_path / "input" / "b.wav").write_bytes(b"RIFF not really audio")
        with pytest.raises(ValueError, match=r"cannot read audio file .*b\.wav"):
            PairedAudioDataset(tmp_path / "input", tmp_path / "target", RATE)

    def test_length_mismatch_is_trimmed_within_tolerance_and_refused_beyond(self, tmp_path):
        (tmp_path / "in").mkdir()
        (tmp_path / "out").mkdir()
        soundfile.write(tmp_path / "in" / "x.wav", np.full(1000, 0.1), RATE)
        soundfile.write(tmp_path / "out" / "x.wav", np.full(1040, 0.2), RATE)  # 5 ms longer
        dataset = PairedAudioDataset(tmp_path / "in", tmp_path / "out", RATE, length_tolerance=0.01)
        audio, target = dataset[0]
        assert audio.shape == target.shape == (1, 1000)
        with pytest.raises(ValueError, match="lengths differ by more than 0.001 s"):
            PairedAudioDataset(tmp_path / "in", tmp_path / "out", RATE, length_tolerance=0.001)

    def test_resamples_to_the_requested_rate(self, tmp_path):
        (tmp_path / "in").mkdir()
        (tmp_path / "out").mkdir()
        source_rate, rate = 44100, 22050
        t = np.arange(44100) / source_rate
        tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
        soundfile.write(tmp_path / "in" / "x.wav", tone, source_rate, subtype="FLOAT")
        soundfile.write(tmp_path / "out" / "x.wav", tone[::2], rate, subtype="FLOAT")
        dataset = PairedAudioDataset(tmp_path / "in", tmp_path / "out", rate)
        audio, target = dataset[0]
        assert dataset.num_samples(0) == 22050
        assert audio.shape == target.shape == (1, 22050)
        # The resampled tone is still a 1 kHz tone of the same amplitude.
        spectrum = np.abs(np.fft.rfft(audio[0].numpy()))
        assert np.argmax(spectrum) * rate / 22050 == pytest.approx(1000, abs=2)
        np.testing.assert_allclose(audio[0, 1000:21000].numpy(), tone[::2][1000:21000], atol=1e-3)

    def test_channels_are_downmixed_or_replicated(self, tmp_path):
        (tmp_path / "in").mkdir()
        (tmp_path / "out").mkdir()
        stereo = np.stack([np.full(500, 0.2), np.full(500, 0.6)], axis=1)
        soundfile.write(tmp_path / "in" / "x.wav", stereo, RATE, subtype="FLOAT")
        soundfile.write(tmp_path / "out" / "x.wav", np.full(500, 0.3), RATE, subtype="FLOAT")
        mono = PairedAudioDataset(tmp_path / "in", tmp_path / "out", RATE, channels=1)
        np.testing.assert_allclose(mono[0][0].numpy(), np.full((1, 500), 0.4), atol=1e-7)
        two = PairedAudioDataset(tmp_path / "in", tmp_path / "out", RATE, channels=2)
        np.testing.assert_allclose(two[0][1].numpy(), np.full((2, 500), 0.3), atol=1e-7)
        soundfile.write(tmp_path / "out" / "x.wav", np.zeros((500, 3)), RATE)
        with pytest.raises(ValueError, match="3 channels"):
            PairedAudioDataset(tmp_path / "in", tmp_path / "out", RATE, channels=2)


class TestFrameStreamer:
    def test_lanes_stream_whole_clips_in_order_with_centred_contexts(self, dataset, clips):
        streamer = FrameStreamer(dataset, lanes=3, frame_size=FRAME, context=CONTEXT, seed=1)
        names = dataset.names
        streams = {lane: [] for lane in range(3)}  # per lane: list of (clip, [frames], [targets])
        for batch in collect(streamer, 60):
            assert batch.context.shape == (3, 1, CONTEXT)
            assert batch.frame.shape == batch.target.shape == (3, 1, FRAME)
            for lane in range(3):
                clip, frame_index = batch.clip_index[lane].item(), batch.frame_index[lane].item()
                audio = clips[names[clip]][0]
                # Reset exactly when a lane starts a clip, which always starts at frame 0.
                assert batch.reset[lane].item() == (frame_index == 0)
                if batch.reset[lane]:
                    streams[lane].append((clip, [], []))
                current_clip, frames, targets = streams[lane][-1]
                assert clip == current_clip and frame_index == len(frames)
                valid = batch.valid_samples[lane].item()
                assert valid == min(FRAME, audio.shape[1] - frame_index * FRAME)
                assert torch.all(batch.frame[lane, :, valid:] == 0)
                np.testing.assert_array_equal(batch.context[lane].numpy(), expected_context(audio, frame_index))
                torch.testing.assert_close(batch.context[lane, :, OFFSET : OFFSET + FRAME], batch.frame[lane])
                frames.append(batch.frame[lane, :, :valid])
                targets.append(batch.target[lane, :, :valid])
        completed = 0
        for lane_streams in streams.values():
            for clip, frames, targets in lane_streams[:-1]:  # the last one may be unfinished
                np.testing.assert_array_equal(torch.cat(frames, -1).numpy(), clips[names[clip]][0])
                np.testing.assert_array_equal(torch.cat(targets, -1).numpy(), clips[names[clip]][1])
                completed += 1
        assert completed >= 10

    def test_training_deals_every_clip_once_per_pass_in_seeded_random_order(self, dataset):
        def deals(seed, steps=80):
            streamer = FrameStreamer(dataset, lanes=2, frame_size=FRAME, context=CONTEXT, seed=seed)
            return [
                batch.clip_index[lane].item()
                for batch in collect(streamer, steps)
                for lane in range(2)
                if batch.reset[lane]
            ]

        first = deals(seed=0)
        assert len(first) >= 3 * len(LENGTHS)
        for start in range(0, 3 * len(LENGTHS), len(LENGTHS)):
            assert sorted(first[start : start + len(LENGTHS)]) == list(range(len(LENGTHS)))
        assert deals(seed=0) == first
        assert deals(seed=1) != first

    def test_min_clip_frames_skips_short_clips(self, dataset):
        streamer = FrameStreamer(dataset, lanes=2, frame_size=FRAME, context=CONTEXT, min_clip_frames=2)
        seen = {clip for batch in collect(streamer, 100) for clip in batch.clip_index.tolist()}
        assert seen == {i for i, n in enumerate(dataset.names) if n != "d"}  # d: 50 samples
        with pytest.raises(ValueError, match="no clip has at least 100 frames"):
            FrameStreamer(dataset, lanes=2, frame_size=FRAME, context=CONTEXT, min_clip_frames=100)

    def test_resuming_from_a_state_dict_continues_identically(self, dataset):
        original = FrameStreamer(dataset, lanes=3, frame_size=FRAME, context=CONTEXT, seed=7)
        collect(original, 13)
        buffer = io.BytesIO()
        torch.save(original.state_dict(), buffer)
        expected = collect(original, 40)

        resumed = FrameStreamer(dataset, lanes=3, frame_size=FRAME, context=CONTEXT, seed=999)
        buffer.seek(0)
        resumed.load_state_dict(torch.load(buffer))
        for want, got in zip(expected, collect(resumed, 40)):
            for field in ("context", "frame", "target", "reset", "clip_index", "frame_index", "valid_samples"):
                assert torch.equal(getattr(want, field), getattr(got, field)), field

    def test_state_of_a_different_configuration_is_refused(self, dataset):
        state = FrameStreamer(dataset, lanes=3, frame_size=FRAME, context=CONTEXT).state_dict()
        other = FrameStreamer(dataset, lanes=4, frame_size=FRAME, context=CONTEXT)
        with pytest.raises(ValueError, match="lanes=3"):
            other.load_state_dict(state)

    def test_validation_streams_every_clip_once_then_stops(self, dataset, clips):
        streamer = FrameStreamer(dataset, lanes=2, frame_size=FRAME, context=CONTEXT, shuffle=False)
        rebuilt = {}
        order = []
        steps = 0
        for batch in streamer:
            steps += 1
            for lane in range(2):
                clip = batch.clip_index[lane].item()
                if not batch.active[lane]:
                    assert clip == -1 and batch.frame_index[lane] == -1
                    assert not batch.reset[lane] and batch.valid_samples[lane] == 0
                    assert torch.all(batch.frame[lane] == 0) and torch.all(batch.context[lane] == 0)
                    continue
                if batch.reset[lane]:
                    assert clip not in rebuilt
                    order.append(clip)
                    rebuilt[clip] = []
                rebuilt[clip].append(batch.frame[lane, :, : batch.valid_samples[lane]])
        assert order == list(range(len(LENGTHS)))
        for clip, frames in rebuilt.items():
            np.testing.assert_array_equal(torch.cat(frames, -1).numpy(), clips[dataset.names[clip]][0])
        # Frames per clip: a 10, b 5, c 16, d 1, e 13. Lane 0 takes a (steps 1-10), lane 1 b
        # (1-5) then c (6-21); lane 0 then takes d (11) and e (12-24) and lane 1 idles from 22.
        assert steps == 24
        with pytest.raises(StopIteration):
            next(streamer)

    def test_rejects_bad_configuration(self, dataset):
        with pytest.raises(ValueError, match="lanes"):
            FrameStreamer(dataset, lanes=0)
        with pytest.raises(ValueError, match="frame_size <= context"):
            FrameStreamer(dataset, lanes=1, frame_size=512, context=256)
