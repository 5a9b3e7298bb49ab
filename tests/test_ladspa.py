"""LADSPA plugins: the declared port ranges, defaults and hints (as ladspa-sdk's analyseplugin
reports them), plain values that reach the port exactly, and identifiers that name one plugin of
a library."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fxgrad

LADSPA = Path("/usr/lib/ladspa")
CAPS = LADSPA / "caps.so"
AMP = LADSPA / "amp.so"
SR = 44100  # JUCE's LADSPA host instantiates at this rate only

pytestmark = pytest.mark.skipif(not CAPS.exists(), reason="caps (LADSPA) is not installed")


def analyseplugin(library):
    """[(label, [(name, text after 'control, ') for each input control port], has an audio input)]
    of a library."""
    out = subprocess.run(["analyseplugin", str(library)], capture_output=True, text=True, check=True).stdout
    plugins = []
    for block in out.split("Plugin Name:")[1:]:
        label = re.search(r'Plugin Label: "(.*)"', block).group(1)
        ports = re.findall(r'"(.*)" input, control(?:, (.*))?$', block, flags=re.M)
        plugins.append((label, ports, bool(re.search(r'" input, audio', block))))
    return plugins


def parse_hints(text):
    """analyseplugin's 'L to U, default D, logarithmic' -> dict (bounds scaled by the rate)."""
    hints = {"toggled": "TOGGLED" in text, "integer": "integer" in text, "log": "logarithmic" in text}
    value = r"(-?\d+(?:\.\d*)?(?:e[+-]?\d+)?)(\*srate)?"
    bounds = re.match(rf"{value} to (?:{value}|\.\.\.)", text)
    if bounds:
        hints["lower"] = float(bounds.group(1)) * (SR if bounds.group(2) else 1)
        if bounds.group(3):
            hints["upper"] = float(bounds.group(3)) * (SR if bounds.group(4) else 1)
    default = re.search(rf"default {value}", text)
    if default:
        hints["default"] = float(default.group(1)) * (SR if default.group(2) else 1)
    return hints


LIBRARIES = sorted(LADSPA.glob("*.so"))


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.name)
def test_parameters_match_analyseplugin(library):
    described = analyseplugin(library)
    for label, ports, has_input in described:
        identifier = f"{library}#{label}" if len(described) > 1 else str(library)
        if not has_input:  # a generator: not an effect, refused with the reason
            with pytest.raises(fxgrad.PluginLoadError, match="no audio input"):
                fxgrad.load(identifier, sample_rate=SR, channels=1)
            continue
        plugin = fxgrad.load(identifier, sample_rate=SR, channels=1)
        # The input control ports and nothing else: an output port (a meter such as caps'
        # Compress "state (dB)") is the plugin's to write, never a parameter to learn or set.
        assert [p.name for p in plugin.parameters] == [name.strip() for name, _ in ports], identifier
        by_name = {p.name: p for p in plugin.parameters}
        for name, text in ports:
            p = by_name[name.strip()]
            hints = parse_hints(text or "")
            where = f"{identifier} '{name}': {text}"
            assert p.is_toggle == hints["toggled"], where
            assert p.is_integer == (hints["integer"] or hints["toggled"]), where
            assert p.logarithmic == hints["log"], where
            if hints["toggled"]:
                assert (p.minimum, p.maximum) == (0.0, 1.0), where
            elif "upper" in hints:
                assert p.minimum == pytest.approx(hints["lower"], rel=1e-6), where
                assert p.maximum == pytest.approx(hints["upper"], rel=1e-6), where
            elif "lower" in hints:
                # One bound only: JUCE's host passes its [0, 1] coordinate as the value.
                assert (p.minimum, p.maximum) == (min(max(hints["lower"], 0.0), 1.0), 1.0), where
            if "default" in hints:
                expected = min(max(hints["default"], p.minimum), p.maximum)
                assert p.default == pytest.approx(expected, rel=1e-4, abs=1e-6), where
                assert plugin.get(p.index) == pytest.approx(p.default, rel=1e-5, abs=1e-6), where


def test_plain_values_reach_the_port_exactly():
    amp = fxgrad.load(f"{AMP}#amp_mono", sample_rate=SR, channels=1)
    gain = amp.parameters[0]
    assert (gain.minimum, gain.maximum, gain.default, gain.logarithmic) == (0.0, 1.0, 1.0, True)
    x = np.ones((1, 64), np.float32)
    for g in (0.5, 0.37, 0.001, 1.0, 0.0):
        amp.set("gain", g)
        assert amp.get("gain") == np.float32(g)
        assert np.all(amp.process(x) == np.float32(g)), g  # the plugin multiplies by its port value

    comp = fxgrad.load(f"{CAPS}#Compress", sample_rate=SR, channels=1)
    assert (comp.get("gain_db"), comp.parameter_index("gain_db")) == (12.0, 6)  # declared default
    comp.set("gain_db", 0.0)
    assert comp.get("gain_db") == 0.0 and comp.get("gain_db", normalized=True) == 0.25  # of [-12, 36]
    comp.set("gain_db", 12.0)
    assert comp.get("gain_db") == 12.0
    with pytest.raises(ValueError, match=r"outside its range \[-12, 36\]"):
        comp.set("gain_db", 40.0)
    comp.set("mode", 2)
    assert comp.get("mode") == 2.0 and comp.parameters[1].steps == 3


def test_gain_changes_the_output_by_the_set_decibels(noise):
    """caps' C* Compress at 0 dB vs 12 dB of gain on quiet noise (below its threshold): the
    output differs by 12 dB, which a [0, 1] coordinate read as dB would not give."""
    x = noise(1, 0.5, -50.0, sample_rate=SR)
    levels = []
    for gain_db in (0.0, 12.0):
        comp = fxgrad.load(f"{CAPS}#Compress", sample_rate=SR, channels=1)
        comp.set("gain_db", gain_db)
        y = comp.process(x)[:, SR // 10 :]
        levels.append(10 * np.log10(np.mean(y.astype(np.float64) ** 2)))
    assert levels[1] - levels[0] == pytest.approx(12.0, abs=0.5), levels


def test_state_and_clone_keep_plain_values(noise):
    source = fxgrad.load(f"{CAPS}#Compress", sample_rate=SR, channels=1)
    source.set("gain_db", 7.5)
    source.set("threshold", 0.3)
    restored = fxgrad.load(f"{CAPS}#Compress", sample_rate=SR, channels=1)
    restored.load_state(source.state)
    copy = source.clone()
    x = noise(1, 0.25, -10.0, sample_rate=SR)
    expected = source.process(x)
    for other in (restored, copy):
        assert (other.get("gain_db"), other.get("threshold")) == (7.5, np.float32(0.3))
        assert np.array_equal(other.process(x), expected)


def test_one_plugin_of_a_library_by_label_or_unique_id():
    by_path = fxgrad.load(f"{CAPS}#Compress", sample_rate=SR, channels=1)
    assert by_path.identifier == f"{CAPS}#Compress"
    assert by_path.name.startswith("C* Compress")
    for selector in ("Compress", "1772", "C* Compress - Compressor and saturating limiter"):
        assert fxgrad.load(CAPS, sample_rate=SR, channels=1, plugin=selector).identifier == by_path.identifier
    with pytest.raises(
        fxgrad.PluginLoadError,
        match=r"holds several plugins; name one as PATH#LABEL, or with "
        r"plugin= \(--select on the command line\):.*Compress \(C\* Compress",
    ):
        fxgrad.load(CAPS, sample_rate=SR)
    with pytest.raises(fxgrad.PluginLoadError, match="holds no plugin 'Compresss'"):
        fxgrad.load(f"{CAPS}#Compresss", sample_rate=SR)
    with pytest.raises(ValueError, match="give one of them"):
        fxgrad.load(f"{CAPS}#Compress", sample_rate=SR, plugin="Plate")


def test_other_sample_rates_are_refused_clearly():
    with pytest.raises(ValueError, match="LADSPA plugins run at 44100 Hz only"):
        fxgrad.load(f"{CAPS}#Compress", sample_rate=48000)
