"""fxgrad data pairs: a training folder from files of mixed rates and channel counts, paired by
name or rendered through a chain, that the trainer's data loading accepts as it is."""

import json

import numpy as np
import pytest
import soundfile
import yaml

import fxgrad
from fxgrad.cli import main
from fxgrad.config import Config
from fxgrad.data.stream import PairedAudioDataset
from fxgrad.train import prepare_data


def tone(seconds, rate, channels, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t)[None] + 0.02 * rng.standard_normal((channels, len(t)))
    return audio.astype(np.float32)


def write(path, audio, rate, subtype="FLOAT"):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio.T, rate, subtype=subtype)


@pytest.fixture
def user_files(tmp_path):
    """Inputs and targets of mixed rates, channel counts and formats, in nested folders."""
    files = {
        "a.wav": (2.5, 44100, 2),
        "songs/b.flac": (3.2, 48000, 1),
        "c.wav": (2.2, 22050, 3),
        "d.wav": (1.4, 16000, 2),
    }
    for k, (name, (seconds, rate, channels)) in enumerate(files.items()):
        audio = tone(seconds, rate, channels, k)
        subtype = "PCM_24" if name.endswith(".flac") else "FLOAT"
        write(tmp_path / "mixes" / name, audio, rate, subtype)
        write(tmp_path / "masters" / name, 0.5 * audio, rate, subtype)
    return tmp_path


def test_pairs_by_name_from_mixed_files_give_a_loadable_data_set(user_files, capsys):
    out = user_files / "data"
    assert (
        main(
            [
                "data",
                "pairs",
                str(user_files / "mixes"),
                str(out),
                "--targets",
                str(user_files / "masters"),
                "--sample-rate",
                "22050",
                "--channels",
                "2",
                "--clip-seconds",
                "1",
                "--valid",
                "0.25",
                "--test",
                "0.25",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"train: {out / 'train'}" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    splits = manifest["splits"]
    assert set(splits) == {"train", "valid", "test"}
    sources = {split: {row["source"] for row in rows} for split, rows in splits.items()}
    assert not (sources["train"] & sources["valid"]) and not (sources["train"] & sources["test"])
    names = sorted(row["clip"] for rows in splits.values() for row in rows)
    # 2.5 s -> 2 clips, 3.2 s -> 3, 2.2 s -> 2, 1.4 s -> 1 (the remainders are under --min-seconds).
    assert names == ["a_000", "a_001", "c_000", "c_001", "d_000", "songs__b_000", "songs__b_001", "songs__b_002"]
    for split in splits:
        dataset = PairedAudioDataset(out / split / "input", out / split / "target", 22050, 2, length_tolerance=0.0)
        for index in range(len(dataset)):
            clip, target = dataset[index]
            assert clip.shape == (2, 22050) == target.shape
            assert np.allclose(target.numpy(), 0.5 * clip.numpy(), atol=1e-6)  # paired by name, same position
        info = soundfile.info(str(sorted((out / split / "input").iterdir())[0]))
        assert info.samplerate == 22050 and info.channels == 2
    # The trainer's data section takes the folders as they are.
    config = Config.from_dict(
        {
            "chain": {"plugins": ["fxgrad:Gain"]},
            "sample_rate": 22050,
            "channels": 2,
            "data": {split: str(out / split) for split in splits},
        }
    )
    loaded = prepare_data(config, progress=False)
    assert len(loaded.train) + len(loaded.valid) == len(splits["train"]) + len(splits["valid"])


def test_pairs_with_targets_rendered_at_hidden_settings(user_files, tmp_path):
    try:
        fxgrad.own_plugin_path("Compressor")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    chain = {
        "plugins": ["fxgrad:Compressor"],
        "learned": ["threshold_db", "ratio"],
        "sample_rate": 22050,
        "channels": 1,
        "block_size": 256,
    }
    chain_file = tmp_path / "chain.yaml"
    chain_file.write_text(yaml.safe_dump(chain))
    out = tmp_path / "rendered"
    assert (
        main(
            [
                "data",
                "pairs",
                str(user_files / "mixes"),
                str(out),
                "--chain",
                str(chain_file),
                "--random",
                "--set",
                "attack_ms=2",
                "--clip-seconds",
                "1.5",
                "--valid",
                "0",
                "--test",
                "0.25",
                "--frame-size",
                "512",
                "--no-progress",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["set"] == {"0.attack_ms": 2.0} and manifest["parameters"] == ["0.threshold_db", "0.ratio"]
    rows = [row for rows in manifest["splits"].values() for row in rows]
    settings = {tuple(row["normalised"]) for row in rows}
    assert len(settings) == len(rows)  # drawn per clip
    split = next(iter(manifest["splits"]))
    row = manifest["splits"][split][0]
    clip, _ = soundfile.read(str(out / split / "input" / f"{row['clip']}.wav"), dtype="float32", always_2d=True)
    target, _ = soundfile.read(str(out / split / "target" / f"{row['clip']}.wav"), dtype="float32", always_2d=True)
    worker = fxgrad.Chain.from_config(chain)
    worker.plugins[0].set("attack_ms", 2.0)
    worker.set_learned(np.asarray(row["normalised"], np.float32))
    assert np.array_equal(worker.process(np.ascontiguousarray(clip.T)), target.T)
    params = (out / split / "params" / f"{row['clip']}.csv").read_text().splitlines()
    assert len(params) == 1 + int(np.ceil(len(clip) / 512))


def test_pairs_report_unpaired_files_and_bad_options(user_files, capsys):
    (user_files / "masters" / "c.wav").unlink()
    assert (
        main(
            [
                "data",
                "pairs",
                str(user_files / "mixes"),
                str(user_files / "x"),
                "--targets",
                str(user_files / "masters"),
                "--no-progress",
            ]
        )
        == 1
    )
    assert "inputs without a target ['c']" in capsys.readouterr().err
    assert main(["data", "pairs", str(user_files / "mixes"), str(user_files / "y"), "--no-progress"]) == 1
    assert "either --targets" in capsys.readouterr().err
