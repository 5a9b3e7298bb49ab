"""Presets a DAW opens, judged by the hosts' own readers: LV2 preset bundles parsed by lilv (the
system's liblilv, not fxgrad), and .vstpreset / .fxp files loaded in a fresh host process the
way JUCE's hosts load them, rendering bit for bit what the plugin rendered, values set just
before saving (pinned in a chain, or set() a moment before) included."""

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fxgrad
from fxgrad.io.lilv import lilv_presets
from fxgrad.io.presets import (
    PresetError,
    load_preset,
    parse_fxp,
    read_vstpreset,
    vst3_class_id,
    write_fxp,
    write_lv2_preset,
    write_presets,
    write_vstpreset,
)

OPTIONS = dict(sample_rate=44100, block_size=512, channels=2)
ZAM_COMP_VST3 = "/usr/lib/vst3/ZamComp.vst3"
ZAM_COMP_VST2 = "/usr/lib/vst/ZamComp-vst.so"
ZAM_EQ2_VST2 = "/usr/lib/vst/ZamEQ2-vst.so"
LSP_COMP_VST2 = "/usr/lib/vst/lsp-plugins/compressor-stereo.so"
LSP_COMP_LV2 = "http://lsp-plug.in/plugins/lv2/compressor_stereo"
LV2_PLUGINS = {
    "calf": "http://calf.sourceforge.net/plugins/Compressor",
    "lsp": LSP_COMP_LV2,
    "zam": "urn:zamaudio:ZamComp",
    "x42": "http://gareus.org/oss/lv2/fil4#stereo",
    "guitarix": "http://guitarix.sourceforge.net/plugins/gx_amp_stereo#GUITARIX_ST",
    "own": "own",
}
# DPF's plugins show host-side values (buffer size, sample rate, program) as parameters.
DPF_INFORMATION = {"buffer_size", "sample_rate", "current_program"}


def load(identifier):
    if identifier == "own":
        identifier = str(fxgrad.own_plugin_path("Compressor", "lv2"))
    elif identifier == "own vst3":
        identifier = str(fxgrad.own_plugin_path("Compressor", "vst3"))
    if identifier.startswith("/") and not Path(identifier).exists():
        pytest.skip(f"{identifier} is not installed")
    return fxgrad.load(identifier, **OPTIONS)


def adjust(plugin, seed):
    """Every setting to a random in-range value (switches included), without processing after."""
    rng = np.random.default_rng(seed)
    for p in plugin.parameters:
        if p.automatable and p.maximum > p.minimum and p.id not in DPF_INFORMATION:
            plugin.set(p.index, float(rng.uniform(0.15, 0.85)), normalized=True)


def reference(plugin, audio):
    """What a fresh instance at ``plugin``'s settings renders."""
    fresh = fxgrad.load(plugin.identifier, **OPTIONS)
    for p in plugin.parameters:
        fresh.set(p.index, plugin.get(p.index, normalized=True), normalized=True)
    return fresh.process(audio)


def lv2_path(folder):
    return [folder, "/usr/lib/lv2", fxgrad.own_plugin_path("Compressor", "lv2").parent]


@pytest.mark.parametrize("family", sorted(LV2_PLUGINS))
def test_lilv_reads_every_lv2_preset_with_the_values_fxgrad_meant(family, tmp_path):
    plugin = load(LV2_PLUGINS[family])
    adjust(plugin, seed=5)
    write_lv2_preset(plugin, tmp_path / "mine.preset.lv2", name=f"mine {family}")
    found = [p for p in lilv_presets(plugin.identifier, lv2_path(tmp_path)) if p.label == f"mine {family}"]
    assert len(found) == 1, [p.label for p in lilv_presets(plugin.identifier, lv2_path(tmp_path))]
    preset = found[0]
    assert preset.errors == "" and preset.values is not None
    ports = [p for p in plugin.parameters if p.id in preset.values]
    assert ports or preset.properties >= 1  # fxgrad's own keep their parameters in state:state
    for p in ports:  # JUCE's float mapping minimum + (maximum - minimum) * f moves a value by float steps
        assert preset.values[p.id] == pytest.approx(
            plugin.get(p.index), rel=1e-6, abs=1e-6 * (p.maximum - p.minimum)
        ), p.id
    if family == "own":
        assert preset.properties == 1 and not ports[2:]  # enabled and freeWheeling only


def test_an_old_bundle_without_prefixes_is_what_lilv_rejects(tmp_path):
    """The form fxgrad wrote before (no @prefix for pset: and lv2:): lilv loads nothing from it,
    so the reader above can tell a good preset from a bad one."""
    plugin = load(LV2_PLUGINS["zam"])
    bundle = write_lv2_preset(plugin, tmp_path / "old.preset.lv2", name="old")
    preset_file = bundle / "old.ttl"
    text = preset_file.read_text()
    preset_file.write_text("\n".join(line for line in text.splitlines() if not line.startswith("@prefix")))
    (preset,) = [p for p in lilv_presets(plugin.identifier, lv2_path(tmp_path)) if p.uri.endswith("old.ttl")]
    assert "failed to expand CURIE" in preset.errors and not preset.values


# ---------------------------------------------------------------------------- a fresh host process

FRESH_PROCESS = """
import json, sys
import numpy as np
import fxgrad
from fxgrad.io.presets import load_preset
jobs = json.load(open(sys.argv[1]))
audio = np.load(sys.argv[2])
for job in jobs:
    plugin = fxgrad.load(job["identifier"], **job["options"])
    if job["preset"].endswith(".state"):
        plugin.load_state(open(job["preset"], "rb").read())
    else:
        load_preset(plugin, job["preset"])
    np.save(job["out"], plugin.process(audio))
"""


def render_elsewhere(folder, jobs, audio):
    """Each job's plugin loaded in one fresh process, given the job's preset or state, rendering ``audio``."""
    np.save(folder / "audio.npy", audio)
    (folder / "jobs.json").write_text(json.dumps(jobs))
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(folder / "jobs.json"), str(folder / "audio.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [np.load(job["out"]) for job in jobs]


CHAIN = {
    "plugins": [ZAM_COMP_VST3, ZAM_COMP_VST2, LSP_COMP_VST2, LSP_COMP_LV2],
    "pinned": {"0.threshold": -30.0, "0.ratio": 10.0, "1.threshold": -24.0, "1.ratio": 6.0},
    **OPTIONS,
}


@pytest.fixture(scope="module")
def fresh_renders(tmp_path_factory):
    """Presets of a chain with pinned values (and of fxgrad's own VST3 and LV2), each plugin
    given one more value just before saving; a fresh process loads each preset and renders."""
    folder = tmp_path_factory.mktemp("fresh")
    for path in CHAIN["plugins"][:3]:
        if not Path(path).exists():
            pytest.skip(f"{path} is not installed")
    chain = fxgrad.Chain.from_config(CHAIN)
    plugins = list(chain.plugins) + [load("own vst3"), load("own")]
    for seed, plugin in enumerate(plugins[2:], start=2):
        adjust(plugin, seed)
    for plugin in plugins[:2]:  # a moment before saving, on top of the pinned values
        plugin.set("knee", 3.0)
    written = write_presets(chain, folder / "presets", "pinned")
    paths = [w.path for w in written] + [
        write_vstpreset(plugins[4], folder / "own.vstpreset"),
        write_lv2_preset(plugins[5], folder / "own.preset.lv2"),
    ]
    audio = np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32) * 0.3
    jobs = [
        {"identifier": p.identifier, "options": OPTIONS, "preset": str(path), "out": str(folder / f"{k}.npy")}
        for k, (p, path) in enumerate(zip(plugins, paths))
    ]
    rendered = render_elsewhere(folder, jobs, audio)
    expected = [reference(p, audio) for p in plugins]
    defaults = [fxgrad.load(p.identifier, **OPTIONS).process(audio) for p in plugins]
    return plugins, paths, expected, defaults, rendered


@pytest.mark.parametrize("index", range(6), ids=["zam-vst3", "zam-vst2", "lsp-vst2", "lsp-lv2", "own-vst3", "own-lv2"])
def test_a_preset_loaded_in_a_fresh_process_renders_the_same(fresh_renders, index):
    plugins, paths, expected, defaults, rendered = fresh_renders
    assert not np.array_equal(expected[index], defaults[index])  # the settings are heard
    assert np.array_equal(rendered[index], expected[index]), (plugins[index].name, paths[index])


def test_pinned_values_and_late_sets_are_in_the_presets(fresh_renders):
    plugins, paths, *_ = fresh_renders
    assert [p.suffix for p in paths[:3]] == [".vstpreset", ".fxp", ".fxp"]
    for plugin, path, pinned in zip(plugins[:2], paths[:2], [(-30.0, 10.0), (-24.0, 6.0)]):
        fresh = fxgrad.load(plugin.identifier, **OPTIONS)
        load_preset(fresh, path)
        assert (fresh.get("threshold"), fresh.get("ratio"), fresh.get("knee")) == pytest.approx(
            (*pinned, 3.0), abs=1e-4
        )


def test_a_vst2_program_holds_the_values_set_not_a_float_step_off(tmp_path):
    """ZamEQ2 (DPF's VST2) reads some parameters back a float step from the value set (its
    bandwidth 0.6660288 as 0.66602886, which it renders 1.8e-7 otherwise): its .fxp and its state
    carry the values set, so both render bit for bit in another process what the plugin rendered."""
    plugin = load(ZAM_EQ2_VST2)
    adjust(plugin, seed=5)
    plugin.set("boost_cut_2", 0.46739, normalized=True)
    plugin.set("bandwidth_2", 0.6660288, normalized=True)
    (tmp_path / "eq.state").write_bytes(plugin.state)
    files = [write_fxp(plugin, tmp_path / "eq.fxp"), tmp_path / "eq.state"]
    jobs = [
        {"identifier": plugin.identifier, "options": OPTIONS, "preset": str(f), "out": str(f) + ".npy"} for f in files
    ]
    audio = np.random.default_rng(2).standard_normal((2, 8192)).astype(np.float32) * 0.3
    expected = reference(plugin, audio)
    for path, rendered in zip(files, render_elsewhere(tmp_path, jobs, audio)):
        assert np.array_equal(rendered, expected), (path.name, float(np.max(np.abs(rendered - expected))))
    values = parse_fxp(files[0].read_bytes()).values
    assert values[plugin.parameter_index("bandwidth_2")] == np.float32(0.6660288)


def test_reading_the_state_keeps_values_set_before_it():
    """A Zam (DPF) VST3 takes parameter changes only with audio: reading its state must neither
    miss values set since the last block nor make the plugin forget them."""
    plugin = load(ZAM_COMP_VST3)
    audio = np.random.default_rng(1).standard_normal((2, 8192)).astype(np.float32) * 0.3
    plugin.process(audio)
    plugin.set("threshold", -30.0)
    plugin.set("ratio", 10.0)
    state = plugin.state
    restored = load(ZAM_COMP_VST3)
    restored.load_state(state)
    assert (restored.get("threshold"), restored.get("ratio")) == (-30.0, 10.0)
    expected = reference(plugin, audio)
    plugin.reset()
    assert np.array_equal(plugin.process(audio), expected)
    assert np.array_equal(restored.process(audio), expected)
    assert np.array_equal(plugin.clone().process(audio), expected)


def test_lanes_take_values_set_just_before_they_are_made():
    """The rack's lanes and render_batch's copies start from the state of a Zam VST3 whose last
    values have not reached its processor yet (no block since they were set)."""
    plugin = load(ZAM_COMP_VST3)
    audio = np.random.default_rng(3).standard_normal((2, 8192)).astype(np.float32) * 0.3
    plugin.process(audio)
    plugin.set("threshold", -30.0)
    plugin.set("knee", 3.0)
    chain = fxgrad.Chain([plugin], ["0.ratio"])
    theta = np.array([[0.8], [0.3]], np.float32)
    expected = []
    for value in theta[:, 0]:
        plugin.set("ratio", float(value), normalized=True)
        expected.append(reference(plugin, audio))
    batch = fxgrad.render_batch(chain, theta, audio, threads=2)
    rack = fxgrad._native.Rack(chain, 2, 0.01, 1, "lockstep", "two-sided", 0, 2, 0)
    time.sleep(0.3)  # what the copies' message thread does later has happened (see the next test)
    lanes = rack.forward(theta, np.stack([audio, audio]), record=False)
    for k in range(2):
        assert np.array_equal(batch[k], expected[k]) and np.array_equal(lanes[k], expected[k]), k
    assert not np.array_equal(expected[0], expected[1])


def test_a_clone_keeps_its_values_once_the_message_thread_has_caught_up():
    """DPF's VST3s list a "Current Program" parameter: setting it, even to the value it has,
    loads that program a little later on the message thread. A copy that set every value again
    after its state rendered the program's defaults from then on (a rack's lanes, made a moment
    before they first render, now and then)."""
    plugin = load(ZAM_COMP_VST3)
    audio = np.random.default_rng(4).standard_normal((2, 8192)).astype(np.float32) * 0.3
    plugin.set("threshold", -30.0)
    plugin.set("knee", 3.0)
    plugin.set("ratio", 0.8, normalized=True)
    copies = [plugin.clone(), plugin.clone()]
    copies[1].reset()
    time.sleep(0.3)
    expected = reference(plugin, audio)
    for copy in copies:
        assert (copy.get("threshold"), copy.get("knee")) == (-30.0, 3.0)
        assert np.array_equal(copy.process(audio), expected)


# ---------------------------------------------------------------------------- file layouts


@pytest.mark.parametrize("kind", ["own vst3", ZAM_COMP_VST3])
def test_vstpreset_is_steinbergs_with_a_meta_info_chunk(kind, tmp_path):
    plugin = load(kind)
    adjust(plugin, seed=2)
    path = write_vstpreset(plugin, tmp_path / "p.vstpreset", name="mine")
    data = path.read_bytes()
    assert data[:4] == b"VST3" and struct.unpack_from("<i", data, 4)[0] == 1
    (list_at,) = struct.unpack_from("<q", data, 40)
    (count,) = struct.unpack_from("<i", data, list_at + 4)
    ids = [data[list_at + 8 + 20 * k : list_at + 12 + 20 * k] for k in range(count)]
    assert ids[0] == b"Comp" and ids[-1] == b"Info" and len(data) == list_at + 8 + 20 * count
    preset = read_vstpreset(path)
    steinberg = plugin.vst3_preset  # Steinberg's PresetFile::savePreset, unchanged
    assert preset.class_id == vst3_class_id(plugin) == steinberg[8:40].decode()
    assert preset.component in steinberg and (preset.controller is None or preset.controller in steinberg)
    assert 'id="MediaName" value="mine"' in preset.meta_info
    if kind == ZAM_COMP_VST3:  # DPF's class IDs spell the plugin's code; its controller saves nothing
        assert preset.class_id == "2046504473616C63504D435A00000000" and preset.controller == b""


@pytest.mark.parametrize("path, kind", [(ZAM_COMP_VST2, "FxCk"), (LSP_COMP_VST2, "FPCh")])
def test_fxp_is_in_the_form_the_plugin_declares(path, kind, tmp_path):
    plugin = load(path)
    adjust(plugin, seed=4)
    data = write_fxp(plugin, tmp_path / "p.fxp", name="my setting").read_bytes()
    assert data[:4] == b"CcnK" and struct.unpack_from(">i", data, 4)[0] == len(data) - 8
    preset = parse_fxp(data)
    assert (preset.kind, preset.name, preset.fx_id) == (kind, "my setting", plugin.vst2_program[16:20])
    if kind == "FxCk":  # every parameter's normalised value, in order (ZamComp snaps its sidechain switch)
        continuous = [p.index for p in plugin.parameters if p.id != "sidechain"]
        assert len(preset.values) == len(plugin.parameters) and continuous
        assert [preset.values[i] for i in continuous] == pytest.approx(
            [plugin.get(i, normalized=True) for i in continuous], abs=1e-6
        )
    else:
        assert preset.chunk and preset.values is None


def test_a_preset_for_another_plugin_is_refused(tmp_path):
    zam, own = load(ZAM_COMP_VST3), load("own vst3")
    with pytest.raises(PresetError, match="is for the VST3 class"):
        load_preset(own, write_vstpreset(zam, tmp_path / "zam.vstpreset"))
    bundle = write_lv2_preset(load(LV2_PLUGINS["zam"]), tmp_path / "zc.preset.lv2")
    with pytest.raises(PresetError, match="applies to urn:zamaudio:ZamComp"):
        load_preset(load("own"), bundle)
    with pytest.raises(PresetError, match="is for the VST2 plugin ID"):
        load_preset(load(LSP_COMP_VST2), write_fxp(load(ZAM_COMP_VST2), tmp_path / "zam.fxp"))
    (tmp_path / "junk.vstpreset").write_bytes(b"not a preset at all, just some bytes" * 3)
    with pytest.raises(PresetError, match="not a .vstpreset"):
        load_preset(own, tmp_path / "junk.vstpreset")
    (tmp_path / "junk.fxp").write_bytes(b"\0" * 80)
    with pytest.raises(PresetError, match="not an .fxp"):
        load_preset(load(ZAM_COMP_VST2), tmp_path / "junk.fxp")
