"""fxgrad match, fxgrad render and the identifiability report, on fxgrad's own Compressor ->
ParametricEQ: a match recovers hidden static settings from a rendered reference, its files
(settings, CSV, presets, plot) are usable, and `fxgrad render --params` equals apply's renderer."""

import json

import numpy as np
import pytest
import soundfile
import torch
import yaml

import fxgrad
from fxgrad.cli import main
from fxgrad.data.synth import make_source
from fxgrad.host.render import render_automation
from fxgrad.io.params import read_parameter_csv, write_parameter_csv
from fxgrad.match.identifiability import identifiability
from fxgrad.match.loss import _ROWS_PER_THREAD, MatchLoss

torch.set_num_threads(1)

RATE = 22050
CHAIN = {
    "plugins": ["fxgrad:Compressor", "fxgrad:ParametricEQ"],
    "learned": ["0.threshold_db", "0.ratio", "1.low_shelf_gain_db", "1.high_shelf_gain_db"],
    "pinned": {"0.attack_ms": 3.0, "0.release_ms": 60.0, "0.knee_db": 2.0, "1.high_shelf_freq_hz": 3000.0},
    "sample_rate": RATE,
    "block_size": 256,
    "channels": 1,
}
HIDDEN = np.array([0.3, 0.65, 0.7, 0.25], np.float32)


@pytest.fixture
def chain_file(tmp_path):
    try:
        fxgrad.own_plugin_path("Compressor")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(CHAIN))
    return path


def write(path, audio, rate=RATE):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.asarray(audio).T, rate, subtype="FLOAT")
    return path


def source(seconds=2.0, seed=5):
    audio, _ = make_source(np.random.default_rng(seed), seconds, RATE, channels=1, knot_seconds=0.5)
    return audio


def read(path):
    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return audio.T, rate


def test_match_recovers_hidden_static_settings_and_writes_usable_results(tmp_path, chain_file, capsys):
    audio = source(seconds=2.0)
    chain = fxgrad.Chain.from_config(CHAIN)
    reference = fxgrad.render_batch(chain, HIDDEN, audio)[0]
    inp, ref = write(tmp_path / "mix.wav", audio), write(tmp_path / "master.wav", reference)
    out = tmp_path / "result"
    assert (
        main(
            [
                "match",
                str(inp),
                str(ref),
                "--chain",
                str(chain_file),
                "--out",
                str(out),
                "--threads",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    settings = json.loads((out / "settings.json").read_text())
    found = np.array(settings["normalised"])
    assert settings["method"] == "auto" and settings["loss"] == "aligned"
    # stdout is no terminal here: the search printed progress lines, and the summary splits
    # the wall time into renders, loss and the rest.
    assert "match (auto): screen" in printed and "match (auto): CMA-ES" in printed
    assert f"{settings['renders']} renders, {settings['seconds']:.1f} s in all: renders" in printed
    assert settings["render_seconds"] + settings["loss_seconds"] < settings["seconds"]
    assert "why auto:" in printed
    assert np.abs(found - HIDDEN).max() < 0.03, (found, HIDDEN)
    assert settings["final_loss"] < 0.05 * settings["start_loss"]
    for row in settings["identifiability"]["parameters"]:
        assert row["status"] == "well determined", row
    assert "0.threshold_db" in printed and "well determined" in printed and "warning" not in printed

    # The rendered output is the chain at the settings found, and `fxgrad render` with the
    # settings CSV reproduces it bit for bit.
    output, rate = read(out / "output.wav")
    assert rate == RATE and np.array_equal(output, fxgrad.render_batch(chain, found.astype(np.float32), audio)[0])
    again = tmp_path / "again.wav"
    assert (
        main(["render", str(inp), str(again), "--chain", str(chain_file), "--params", str(out / "settings.csv")]) == 0
    )
    assert np.array_equal(read(again)[0], output)
    assert (out / "match.png").read_bytes()[:4] == b"\x89PNG"
    presets = sorted(p.name for p in (out / "presets").iterdir())
    assert presets == ["0-FxgradCompressor-match-mix.preset.lv2", "1-FxgradParametricEQ-match-mix.preset.lv2"]
    # Presets from the settings file by the presets verb load back to the same sound.
    assert main(["presets", str(out / "settings.json"), str(tmp_path / "daw")]) == 0
    fresh = fxgrad.Chain.from_config(CHAIN)
    from fxgrad.io.presets import load_preset

    for plugin, bundle in zip(fresh.plugins, sorted((tmp_path / "daw").iterdir())):
        load_preset(plugin, bundle)
    assert np.array_equal(fresh.process(audio), output)


def test_match_with_spsa_runs_fit_statics_optimiser(tmp_path, chain_file, capsys):
    audio = source(seconds=1.0)
    chain = fxgrad.Chain.from_config(CHAIN)
    reference = fxgrad.render_batch(chain, HIDDEN, audio)[0]
    inp, ref = write(tmp_path / "in" / "a.wav", audio), write(tmp_path / "ref" / "a.wav", reference)
    out = tmp_path / "spsa"
    assert (
        main(
            [
                "match",
                str(inp.parent),
                str(ref.parent),
                "--chain",
                str(chain_file),
                "--method",
                "spsa",
                "--budget",
                "40",
                "--out",
                str(out),
                "--no-progress",
                "--no-presets",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    settings = json.loads((out / "settings.json").read_text())
    assert settings["method"] == "spsa" and settings["pairs"] == 1
    assert settings["final_loss"] < settings["start_loss"]
    assert json.loads((out / "spsa.json").read_text())["normalised"] == pytest.approx(settings["normalised"], abs=1e-6)
    assert (out / "output" / "a.wav").is_file()


def test_identifiability_warns_about_a_parameter_the_loss_ignores(chain_file):
    audio = source(seconds=1.0)
    chain = fxgrad.Chain.from_config(CHAIN)
    # Threshold at the top of its range: the compressor never acts, so its ratio does not matter.
    hidden = HIDDEN.copy()
    hidden[0] = 1.0
    loss = MatchLoss(fxgrad.render_batch(chain, hidden, audio)[0], RATE, "aligned")
    report = identifiability(
        lambda thetas: loss(fxgrad.render_batch(chain, thetas, audio)), hidden, chain.get_learned(), chain.learned
    )
    status = {row["parameter"]: row["status"] for row in report["parameters"]}
    assert status["0.ratio"] == "barely constrained"
    assert status["1.low_shelf_gain_db"] == status["1.high_shelf_gain_db"] == "well determined"
    assert report["loss"] == pytest.approx(0.0, abs=1e-6)


def test_render_with_a_parameter_csv_equals_applys_renderer(tmp_path, chain_file):
    audio = source(seconds=1.5, seed=7)
    inp = write(tmp_path / "in.wav", audio)
    chain = fxgrad.Chain.from_config({**CHAIN, "learned": ["0.threshold_db", "1.high_shelf_gain_db"]})
    frame = 1024
    frames = int(np.ceil(audio.shape[1] / frame))
    thetas = np.random.default_rng(0).uniform(0, 1, (frames, 2)).astype(np.float32)
    csv_path = tmp_path / "automation.csv"
    write_parameter_csv(csv_path, chain, thetas, frame)
    out = tmp_path / "out.wav"
    assert main(["render", str(inp), str(out), "--chain", str(chain_file), "--params", str(csv_path)]) == 0
    expected = render_automation(
        fxgrad.Chain.from_config({**CHAIN, "learned": ["0.threshold_db", "1.high_shelf_gain_db"]}),
        audio,
        read_parameter_csv(csv_path),
        frame,
    )
    rendered, rate = read(out)
    assert rate == RATE and np.array_equal(rendered, expected)
    assert not np.array_equal(rendered, audio)


def test_render_with_set_and_its_errors(tmp_path, chain_file, capsys):
    audio = source(seconds=0.5)
    inp = write(tmp_path / "in.wav", audio)
    out = tmp_path / "out.wav"
    assert (
        main(
            [
                "render",
                str(inp),
                str(out),
                "--chain",
                str(chain_file),
                "--set",
                "0.threshold_db=-30",
                "--set",
                "high_shelf_gain_db=6",
            ]
        )
        == 0
    )
    chain = fxgrad.Chain.from_config(CHAIN)
    chain.plugins[0].set("threshold_db", -30.0)
    chain.plugins[1].set("high_shelf_gain_db", 6.0)
    assert np.array_equal(read(out)[0], chain.process(audio))
    capsys.readouterr()
    assert main(["render", str(inp), str(out), "--chain", str(chain_file), "--set", "0.threshhold_db=-30"]) == 1
    assert "threshold_db" in capsys.readouterr().err  # the close match is named
    assert main(["render", str(inp), str(out), "--chain", str(chain_file), "--set", "0.threshold_db=loud"]) == 1
    assert "not a number" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "missing.wav"), str(out), "--chain", str(chain_file)]) == 1
    assert "no such audio file" in capsys.readouterr().err


def test_style_loss_compares_material_of_other_lengths_by_balance_loudness_and_dynamics():
    reference = source(seconds=1.5, seed=1)
    loss = MatchLoss(reference, RATE, "style")
    tilted = np.concatenate([reference[:, :1], np.diff(reference, axis=1)], axis=1)  # brighter
    values = loss(np.stack([reference, 2.0 * reference, tilted]))
    assert values[0] == pytest.approx(0.0, abs=1e-9)
    assert values[1] == pytest.approx(0.1 * 20 * np.log10(2.0), abs=1e-3)  # +6 dB: 0.1 per LU, nothing else
    assert values[2] > 0.2
    other = loss(source(seconds=1.0, seed=2)[None])[0]  # other notes, another length
    assert np.isfinite(other) and other > 0
    with pytest.raises(ValueError, match="reference's"):
        MatchLoss(reference, RATE, "aligned")(source(seconds=1.0)[None])


def test_match_of_a_segment_renders_the_whole_input_and_moves_a_setting_off_its_range_end(tmp_path):
    # The makeup gain starts at its range end (0 dB): CMA-ES started there barely moves it;
    # auto starts away from the ends and finds it.
    config = {**CHAIN, "learned": ["0.threshold_db", "0.makeup_db"]}
    chain = fxgrad.Chain.from_config(config)
    assert chain.get_learned()[1] == 0.0
    hidden = np.array([0.4, 0.3], np.float32)
    audio = source(seconds=2.0, seed=3)
    reference = fxgrad.render_batch(chain, hidden, audio)[0]
    inp, ref = write(tmp_path / "long.wav", audio), write(tmp_path / "ref.wav", reference)
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "segment"
    from fxgrad.match.search import match_files

    result = match_files(
        inp, ref, tmp_path / "chain.yaml", out, threads=2, progress=False, presets=False, start=0.5, duration=1.0
    )
    assert np.abs(np.array(result["normalised"]) - hidden).max() < 0.02, result["normalised"]
    assert result["segment"] == {"start_s": 0.5, "duration_s": 1.0}
    output, _ = read(out / "output.wav")
    assert output.shape == audio.shape  # the whole input, at the settings found
    with pytest.raises(ValueError, match="past its end"):
        match_files(inp, ref, tmp_path / "chain.yaml", out, progress=False, start=5.0)


def test_the_loss_of_a_population_is_each_items_loss_whatever_the_threads():
    reference = source(seconds=1.5, seed=1)
    rng = np.random.default_rng(0)
    gains = np.linspace(0.5, 1.5, 25)
    outputs = np.stack([g * reference + 1e-3 * rng.standard_normal(reference.shape) for g in gains])
    outputs = outputs.astype(np.float32)
    batched = MatchLoss(reference, RATE, threads=1)(outputs)
    assert np.array_equal(MatchLoss(reference, RATE, threads=3)(outputs), batched)
    assert np.array_equal(MatchLoss(reference, RATE)(torch.from_numpy(outputs[2:3])), batched[2:3])
    # the gain of 1 matches best, and the loss grows with the gain error on either side
    assert (np.diff(batched[:13]) < 0).all() and (np.diff(batched[12:]) > 0).all(), batched
    with pytest.raises(ValueError, match="channel"):
        MatchLoss(reference, RATE)(np.zeros((2, 2, reference.shape[1]), np.float32))
    # the style loss's CPU threads each take at least _ROWS_PER_THREAD rows: three share these
    assert len(outputs) * reference.shape[0] >= 3 * _ROWS_PER_THREAD
    style = MatchLoss(reference, RATE, "style", device="cpu", threads=1)(outputs)
    assert np.array_equal(MatchLoss(reference, RATE, "style", device="cpu", threads=3)(outputs), style)


def _aligned_loss_by_its_definition(outputs: np.ndarray, reference: np.ndarray, rate: float) -> np.ndarray:
    """MatchLoss's aligned loss as its docstring defines it, in float64 NumPy, item by item."""
    from fxgrad.match.loss import _FLOOR_MAGNITUDE, RESOLUTIONS, _k_weighting_power, frame_hop

    samples = reference.shape[-1]

    def spectra(audio):  # (C, N) -> per resolution (C, frames, bins) magnitudes; K-weighted frame powers
        mags, power = [], None
        for n in RESOLUTIONS:
            hop, half = frame_hop(samples, n), n // 2
            window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
            padded = np.pad(audio.astype(np.float64), ((0, 0), (half, n)))
            frames = np.stack([padded[:, f * hop : f * hop + n] for f in range(samples // hop + 1)], axis=1)
            mag = np.maximum(np.abs(np.fft.rfft(frames * window, axis=-1)), _FLOOR_MAGNITUDE)
            if power is None:  # Parseval: a frame's mean square from its one-sided spectrum
                doubled = np.full(n // 2 + 1, 2.0)
                doubled[0] = doubled[-1] = 1.0
                weighting = _k_weighting_power(rate, n) * doubled / (n * np.sum(window**2))
                power = (mag**2 * weighting).sum(axis=(0, 2))
            mags.append(mag)
        return mags, power

    def loudness(power):  # BS.1770: absolute gate at -70 LUFS, relative gate 10 LU below
        lufs = -0.691 + 10 * np.log10(np.maximum(power, 1e-12))
        loud = lufs > -70
        mean = power[loud].mean() if loud.any() else 0.0
        keep = loud & (lufs > -0.691 + 10 * np.log10(max(mean, 1e-12)) - 10)
        return -0.691 + 10 * np.log10(max(power[keep].mean(), 1e-12)) if keep.any() else -70.0

    ref_mags, ref_power = spectra(reference)
    losses = []
    for output in outputs:
        mags, power = spectra(output)
        spectral = [
            np.linalg.norm(x - y) / np.linalg.norm(y) + np.abs(np.log(x) - np.log(y)).mean()
            for x, y in zip(mags, ref_mags)
        ]
        losses.append(np.mean(spectral) + 0.1 * abs(loudness(power) - loudness(ref_power)))
    return np.asarray(losses)


def test_the_aligned_loss_is_its_definition_on_real_renders(chain_file):
    chain = fxgrad.Chain.from_config(CHAIN)
    audio = source(seconds=1.3, seed=4)
    reference = fxgrad.render_batch(chain, HIDDEN[None], audio)[0]
    thetas = np.random.default_rng(2).uniform(0, 1, (9, len(HIDDEN))).astype(np.float32)
    outputs = fxgrad.render_batch(chain, thetas, audio)
    # a quiet item, where the gates drop frames, and one under the absolute gate throughout
    outputs = np.concatenate([outputs, 0.01 * outputs[:1], np.full_like(outputs[:1], 1e-5)])
    loss = MatchLoss(reference, RATE, "aligned")
    assert loss(outputs) == pytest.approx(_aligned_loss_by_its_definition(outputs, reference, RATE), rel=1e-5)
    assert loss(reference[None])[0] == 0.0
    # a long file: each resolution looks at up to ANALYSED_SAMPLES spread over it
    long = np.tile(audio, 9)
    long_reference = fxgrad.render_batch(chain, HIDDEN[None], long)[0]
    long_outputs = fxgrad.render_batch(chain, thetas[:3], long)
    assert MatchLoss(long_reference, RATE)(long_outputs) == pytest.approx(
        _aligned_loss_by_its_definition(long_outputs, long_reference, RATE), rel=1e-5
    )
    broken = outputs[:3].copy()
    broken[1, 0, 100] = np.nan
    with pytest.raises(ValueError, match="output 1 holds NaN"):
        loss(broken)


def test_side_by_side_runs_are_the_runs_alone_rendered_together(chain_file):
    from dataclasses import replace

    from fxgrad.match.optimise import Objective, Plateau, Search
    from fxgrad.match.strategy import Strategy, run_strategy

    chain = fxgrad.Chain.from_config(CHAIN)
    audio = source(seconds=0.5, seed=2)
    reference = fxgrad.render_batch(chain, HIDDEN[None], audio)[0]
    start = np.asarray(chain.get_learned(), np.float32)
    alone = Strategy("three", screen=1.0, margin=0.1, sigma=0.2, plateau=Plateau(relative=1e-2), restarts=2)

    def run(strategy):
        objective = Objective(chain, [audio], [MatchLoss(reference, RATE, threads=1)], threads=2)
        search = Search(objective, chain.num_parameters, max_renders=20_000)
        notes = run_strategy(search, strategy, start, seed=3)
        return notes, search

    notes, search = run(alone)
    together, search_together = run(replace(alone, side_by_side=3))
    runs = [n for n in notes if n.startswith("CMA-ES")]
    assert len(runs) == 3 and not search.exhausted, notes  # every run ended on its own, not on the budget
    # the same three runs (population, step, renders, best, why), each as it was alone ...
    assert sorted(n for n in together if n.startswith("CMA-ES")) == sorted(runs)
    assert search_together.renders == search.renders and search_together.best_loss == search.best_loss
    # ... but rendered together: the first batch after the screen holds all three runs' settings
    population = alone.base_population(chain.num_parameters)
    first = search_together.history[1]
    assert first["stage"] == "CMA-ES run 1 + CMA-ES run 2 + CMA-ES run 3"
    assert first["renders"] - search_together.history[0]["renders"] == 7 * population
    assert len(search_together.history) < len(search.history)
