"""Ardour 7 sessions written by ``fxgrad session``, opened and rendered by Ardour's own headless
exporter (``ardour7-export``), never by a reader of fxgrad's: a tiny trained demo model's
session renders as ``fxgrad apply`` does, a matched LV2 + VST3 chain's as ``fxgrad match``
rendered it, Zam's VST3, VST2 and LADSPA builds as fxgrad hosts them, and Ardour loads exactly
the plugin bundles fxgrad loaded. The tolerance is docs/daw.md's: at most 1e-6 (-120 dBFS) per
sample (fxgrad's own plugins and the static settings measure 0)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from test_demo import TINY as DEMO_TINY

import fxgrad
from fxgrad.cli import main
from fxgrad.io.ardour import ardour_available
from fxgrad.io.session import PLUGIN_FOLDER, Session, compare_renders, export_to_array, write_session
from fxgrad.io.session_spec import automation_points

TOLERANCE = 1e-6
TINY = {**DEMO_TINY, "data.synthetic.test_clips": 1}  # the demo test's tiny run, one test clip
needs_ardour = pytest.mark.skipif(ardour_available() is not None, reason=str(ardour_available()))


@pytest.fixture(autouse=True)
def own_ardour_cache(tmp_path, monkeypatch):
    """Ardour's plugin cache in the test's folder: every test indexes its VST plugins afresh."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def own_plugins_or_skip():
    try:
        fxgrad.own_plugin_path("Compressor", "lv2"), fxgrad.own_plugin_path("ParametricEQ", "vst3")
    except FileNotFoundError as error:
        pytest.skip(str(error))


def read(path) -> np.ndarray:
    frames, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    return frames.T


def exported(folder: Path, samples: int) -> np.ndarray:
    """The session in ``folder`` rendered by ardour7-export (its master bus: two channels)."""
    return export_to_array(Session(folder, folder.name, "fxgrad", samples))


def links(folder: Path):
    return sorted(link.resolve() for link in (folder / PLUGIN_FOLDER).glob("*/*"))


def test_steps_hold_each_frame_and_linear_ramps():
    values = np.array([0.2, 0.2, 0.7, 0.1])
    times, points = automation_points(values, 100, 350, "steps")
    assert times == [0, 199, 200, 299, 300, 349]  # a run of equal frames keeps its two ends only
    assert points == [0.2, 0.2, 0.7, 0.7, 0.1, 0.1]
    assert automation_points(values, 100, 350, "linear") == ([0, 100, 200, 300], values.tolist())
    # Behind 150 samples of latency: the same curve 150 samples earlier, from its value there.
    assert automation_points(values, 100, 350, "steps", 150) == ([0, 49, 50, 149, 150, 199], points)
    times, points = automation_points(values, 100, 350, "linear", 150)
    assert times == [0, 50, 150] and points == pytest.approx([0.45, 0.7, 0.1])  # 0.45: the ramp at 150
    with pytest.raises(ValueError, match="automation must be one of"):
        automation_points(values, 100, 350, "cubic")


def test_bad_input_is_refused_before_ardour_runs(tmp_path, noise):
    chain = fxgrad.Chain([fxgrad.load("urn:zamaudio:ZamComp", 22050, 256, 1)])
    audio = noise(channels=1, seconds=0.1, sample_rate=22050)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="exists: give a new folder"):
        write_session(tmp_path / "taken", audio, chain)
    with pytest.raises(ValueError, match=r"audio must be shaped \(1, samples\)"):
        write_session(tmp_path / "new", np.zeros((2, 10), np.float32), chain)
    with pytest.raises(ValueError, match="session name"):
        write_session(tmp_path / "new", audio, chain, name="../elsewhere")
    with pytest.raises(ValueError, match=r"thetas must be shaped \(3, 7\)"):
        write_session(tmp_path / "new", audio, chain, thetas=np.zeros((2, 1)), frame_size=1024)
    assert not (tmp_path / "new").exists()
    assert main(["session", str(tmp_path / "new"), "--input", "x.wav", "--model", "m.pt", "--chain", "c.yaml"]) == 1


@needs_ardour
def test_trained_demo_model_session_exports_as_fxgrad_apply_renders(tmp_path, capsys):
    own_plugins_or_skip()
    overrides = [item for key, value in TINY.items() for item in ("--set", f"{key}={value}")]
    assert main(["train", "demo", "--output", str(tmp_path / "run"), "--no-progress", *overrides]) == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    clip = sorted((tmp_path / "run" / "data" / "test" / "input").glob("*.wav"))[0]
    assert main(["apply", str(checkpoint), str(clip), str(tmp_path / "applied.wav")]) == 0
    folder = tmp_path / "demo-session"
    assert main(["session", str(folder), "--input", str(clip), "--model", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "automation: 2 lane(s) (0.threshold_db, 1.high_shelf_gain_db)" in out

    applied = read(tmp_path / "applied.wav")
    export = exported(folder, applied.shape[1])
    assert export.shape == (2, applied.shape[1])  # the stereo master bus, the mono track on both sides
    figures = compare_renders(applied, export[:1])
    assert figures["max_abs"] <= TOLERANCE, figures
    assert np.array_equal(export[0], export[1])
    assert links(folder) == [fxgrad.own_plugin_path("Compressor"), fxgrad.own_plugin_path("ParametricEQ")]


def two_format_chain(tmp_path: Path) -> Path:
    config = {
        "plugins": ["fxgrad:Compressor", "fxgrad:ParametricEQ/vst3"],
        "learned": ["0.threshold_db", "1.high_shelf_gain_db"],
        "pinned": {"0.ratio": 6.0, "0.attack_ms": 5.0, "1.high_shelf_freq_hz": 3000.0},
        "sample_rate": 22050,
        "channels": 2,
        "block_size": 256,
    }
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(config))
    return path


@needs_ardour
def test_matched_lv2_and_vst3_chain_exports_as_fxgrad_match_rendered(tmp_path, noise, monkeypatch):
    own_plugins_or_skip()
    chain_file = two_format_chain(tmp_path)
    clip = noise(channels=2, seconds=1.0, level_db=-14, sample_rate=22050)
    clip[1] *= np.linspace(0.2, 1.0, clip.shape[1], dtype=np.float32)  # the channels differ
    soundfile.write(str(tmp_path / "in.wav"), clip.T, 22050, subtype="FLOAT")
    hidden = fxgrad.Chain.from_config(json.loads(chain_file.read_text()))
    hidden.set_learned(np.array([0.55, 0.8], np.float32))
    soundfile.write(str(tmp_path / "ref.wav"), hidden.process(clip).T, 22050, subtype="FLOAT")
    match = ["match", str(tmp_path / "in.wav"), str(tmp_path / "ref.wav"), "--chain", str(chain_file)]
    options = ["--budget", "2", "--population", "4", "--no-presets", "--no-progress", "--threads", "2"]
    assert main([*match, *options, "--out", str(tmp_path / "match")]) == 0
    settings = json.loads((tmp_path / "match" / "settings.json").read_text())

    chain = fxgrad.Chain.from_config(settings["chain"])
    chain.set_learned(np.asarray(settings["normalised"], np.float32))
    monkeypatch.chdir(tmp_path)
    session = write_session("matched", clip, chain)  # a relative folder, as on a command line
    export = exported(session.folder, clip.shape[1])
    figures = compare_renders(read(tmp_path / "match" / "output.wav"), export)
    assert figures["max_abs"] <= TOLERANCE, figures
    # Exactly the bundles fxgrad loaded: Ardour's process mapped their shared objects, and only them.
    bundles = [fxgrad.own_plugin_path("Compressor", "lv2"), fxgrad.own_plugin_path("ParametricEQ", "vst3")]
    for bundle in bundles:
        assert any(bundle in library.parents for library in session.libraries), bundle
    assert not [
        lib for lib in session.libraries if lib.name.startswith("Fxgrad") and not lib.is_relative_to(bundles[0].parent)
    ]
    assert links(session.folder) == sorted(bundles)
    assert session.values[0]["Threshold (dB)"] == pytest.approx(chain.plugins[0].get("threshold_db"), abs=1e-4)


@needs_ardour
def test_zam_vst3_vst2_and_ladspa_builds_render_in_ardour_as_in_fxgrad(tmp_path, noise):
    plugins = ["/usr/lib/vst3/ZamComp.vst3", "/usr/lib/vst/ZamEQ2-vst.so", "/usr/lib/ladspa/ZamComp-ladspa.so"]
    for path in plugins:
        if not Path(path).exists():
            pytest.skip(f"{path} is not installed (apt-get install zam-plugins)")
    loaded = [fxgrad.load(path, 44100, 256, 1) for path in plugins]  # fxgrad hosts LADSPA at 44.1 kHz
    chain = fxgrad.Chain(loaded, ["0.threshold", "1.boost_cut_1", "2.ratio"], {"0.ratio": 8.0})
    chain.set_learned(np.array([0.7, 0.8, 0.5], np.float32))
    clip = noise(channels=1, seconds=0.5, level_db=-12, sample_rate=44100)
    session = write_session(tmp_path / "zam", clip, chain)
    assert links(session.folder) == sorted(Path(path).resolve() for path in plugins)
    figures = compare_renders(chain.clone().process(clip), exported(session.folder, clip.shape[1])[:1])
    assert figures["max_abs"] <= TOLERANCE, figures
