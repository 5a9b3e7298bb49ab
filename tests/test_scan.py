"""What `scan` lists loads as it is, in a fresh process, for every format (fxgrad's own effects and
one plugin of a library holding several included); what fxgrad cannot host is marked; a
truncated library is listed as unloadable and never opened (opening it would end the process)."""

import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fxgrad
from fxgrad.host.plugins import OWN_EFFECTS


@pytest.fixture(scope="module")
def scans():
    """(scan(), scan(include_unsupported=True)), taken once."""
    return fxgrad.scan(), fxgrad.scan(include_unsupported=True)


def test_every_format_s_identifiers_load_in_a_fresh_process(scans, run_python):
    by_format = collections.defaultdict(list)
    for info in scans[0]:
        by_format[info.format].append(info.identifier)
    assert {"LV2", "VST3", "VST2", "LADSPA"} <= set(by_format)
    own = [i for ids in by_format.values() for i in ids if i.startswith("fxgrad:")]
    assert sorted(own) == sorted([f"fxgrad:{e}" for e in OWN_EFFECTS] + [f"fxgrad:{e}/vst3" for e in OWN_EFFECTS])
    shared = [i for i in by_format["LADSPA"] if "#" in i]
    assert "/usr/lib/ladspa/caps.so#Compress" in shared
    # A few of each format, every own effect, and every library-with-several form; loaded by a
    # process that has not scanned (the URIs of the own effects too).
    chosen = own + [f"https://fxgrad.org/plugins/{e}" for e in OWN_EFFECTS] + shared[:10]
    for fmt in ("LV2", "VST3", "VST2", "LADSPA"):
        others = [i for i in by_format[fmt] if not i.startswith("fxgrad:")]
        chosen += others[:: max(1, len(others) // 8)]
    loaded = run_python(
        f"""
        import json, fxgrad
        failures = {{}}
        for identifier in {json.dumps(sorted(set(chosen)))}:
            try:
                fxgrad.load(identifier, sample_rate=44100)
            except Exception as error:
                failures[identifier] = repr(error)
        print(json.dumps(failures))
    """,
        timeout=600,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == {}


def test_plugins_without_audio_output_are_marked_and_left_out_by_default(scans):
    hosted = {i.identifier for i in scans[0]}
    everything = {i.identifier: i for i in scans[1]}
    midi_only = everything["http://gareus.org/oss/lv2/midifilter#passthru"]
    assert "no audio output" in midi_only.unsupported and midi_only.identifier not in hosted
    xfade = everything["http://gareus.org/oss/lv2/xfade"]
    assert "connects none of its audio ports" in xfade.unsupported
    # Generators load nowhere either (load refuses what has no audio input), so scan marks them.
    for generator in ("/usr/lib/ladspa/caps.so#White", "http://gareus.org/oss/lv2/testsignal"):
        assert "no audio input" in everything[generator].unsupported and generator not in hosted
    assert not everything["urn:zamaudio:ZamComp"].unsupported and "urn:zamaudio:ZamComp" in hosted
    assert hosted == {i for i, info in everything.items() if not info.unsupported}


def truncated_copies(folder):
    """A LADSPA library cut to half its size, and a copy of the Misbehave LV2 bundle whose
    library is cut short: what a download or copy that stopped midway leaves."""
    ladspa = folder / "ladspa"
    ladspa.mkdir()
    whole = Path("/usr/lib/ladspa/amp.so").read_bytes()
    (ladspa / "amp.so").write_bytes(whole[: len(whole) // 2])
    bundle = folder / "Cut.lv2"
    shutil.copytree(Path(__file__).parent / "fixtures" / "plugins" / "FxgradMisbehave.lv2", bundle)
    (library,) = bundle.glob("*.so")
    library.write_bytes(library.read_bytes()[:300_000])
    return ladspa / "amp.so", bundle


def test_a_truncated_binary_is_listed_as_unloadable_and_never_opened(tmp_path):
    library, bundle = truncated_copies(tmp_path)
    scanned = subprocess.run(
        [sys.executable, "-m", "fxgrad", "scan", "--no-own", "--format", "ladspa"],
        capture_output=True,
        text=True,
        env={**os.environ, "LADSPA_PATH": str(library.parent)},
        timeout=120,
    )
    assert scanned.returncode == 0, scanned.stderr  # not 135 (SIGBUS)
    assert f"unloadable: {library} is truncated" in scanned.stdout, scanned.stdout
    assert "1 unloadable file(s)" in scanned.stdout  # once, though two formats look at .so files
    for identifier in (library, f"{library}#amp_mono", bundle):
        with pytest.raises(fxgrad.PluginLoadError, match="is truncated: .* the file has"):
            fxgrad.load(identifier, sample_rate=44100, channels=1)
    info = subprocess.run(
        [sys.executable, "-m", "fxgrad", "info", str(bundle)], capture_output=True, text=True, timeout=120
    )
    assert info.returncode == 1 and "is truncated" in info.stderr and "Traceback" not in info.stderr, info.stderr
