"""`fxgrad check`: plugins probed in worker processes, so that one that crashes, aborts or hangs is
reported (with the stage and the settings being rendered) and `check` itself carries on. The
misbehaving plugins are a LADSPA library of the tests' own (tests/fixtures/misbehaving_ladspa.c)
beside real installed plugins."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fxgrad.cli import main
from fxgrad.host import check

FIXTURE = Path(__file__).parent / "fixtures" / "misbehaving_ladspa.c"
ZAMCOMP = "urn:zamaudio:ZamComp"
MIDI_ONLY = "http://gareus.org/oss/lv2/midifilter#passthru"
XFADE = "http://gareus.org/oss/lv2/xfade"


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory):
    """Path of the compiled misbehaving LADSPA library."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    library = tmp_path_factory.mktemp("ladspa") / "misbehaving.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(FIXTURE)], check=True)
    return library


def by_identifier(results):
    return {r["identifier"]: r for r in results}


def test_crashes_hangs_and_errors_are_reported_and_check_carries_on(misbehaving):
    targets = [check.Target(f"{misbehaving}#{label}") for label in ("crash", "hang", "nan", "abort", "clean")]
    targets += [check.Target(ZAMCOMP), check.Target(MIDI_ONLY), check.Target("/no/such/plugin.so")]
    started = time.monotonic()
    results = by_identifier(check.check(targets, jobs=2, timeout_s=4.0))
    assert time.monotonic() - started < 60
    assert len(results) == len(targets)

    crash = results[f"{misbehaving}#crash"]
    assert (crash["status"], crash["signal"], crash["format"]) == ("crash", "SIGSEGV", "LADSPA")
    assert crash["stage"].startswith("render at random settings 1/")
    assert crash["settings"]["danger"] > 0.01  # the value that crashed it, to reproduce
    assert "SIGSEGV during render at random settings" in check.describe(crash)

    hang = results[f"{misbehaving}#hang"]
    assert hang["status"] == "hang" and hang["stage"] == "render at defaults"
    assert "no answer within 4 s" in hang["message"]

    nan = results[f"{misbehaving}#nan"]
    assert (nan["status"], nan["error"], nan["stage"]) == ("error", "PluginOutputError", "render at defaults")
    assert "produced NaN or Inf" in nan["message"]

    abort = results[f"{misbehaving}#abort"]
    assert (abort["status"], abort["signal"], abort["stage"]) == ("crash", "SIGABRT", "load")

    for identifier in (f"{misbehaving}#clean", ZAMCOMP):
        ok = results[identifier]
        assert ok["status"] == "ok", ok
        assert ok["deterministic"] and ok["reset_exact"] and ok["state_exact"], ok
        assert ok["latency_samples"] == 0 and not ok["dsp_snapshot"] and 0 < ok["seconds_per_second"] < 1

    assert results[MIDI_ONLY]["status"] == "error" and "no audio output" in results[MIDI_ONLY]["message"]
    assert results["/no/such/plugin.so"]["error"] == "FileNotFoundError"

    summary = check.summarize(list(results.values()))
    assert summary["all"] == {"ok": 2, "error": 3, "crash": 2, "hang": 1, "total": 8}
    assert summary["LADSPA"] == {"ok": 1, "error": 1, "crash": 1, "hang": 1, "total": 4}  # clean, nan, crash, hang
    assert summary["?"]["total"] == 3  # what never loaded (abort, MIDI-only, missing) has no format


def test_the_command_prints_one_line_per_plugin_and_json(misbehaving, capsys):
    code = main(["check", f"{misbehaving}#clean", XFADE, "fxgrad:Gain", "--timeout", "30", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1  # not every plugin is ok
    lines = out.splitlines()
    line = {
        identifier: next(text for text in lines if f"({identifier})" in text)  # in the order they finish
        for identifier in (f"{misbehaving}#clean", XFADE, "fxgrad:Gain")
    }
    assert line[f"{misbehaving}#clean"].startswith("ok     LADSPA  clean")
    assert line["fxgrad:Gain"].startswith("ok     LV2     FxgradGain") and "DSP snapshot" in line["fxgrad:Gain"]
    assert line[XFADE].startswith("error") and "connects none of its audio ports" in line[XFADE]
    assert lines[-1].startswith("3 plugin(s) checked in ")

    code = main(["check", "fxgrad:Gain", "--json"])
    described = json.loads(capsys.readouterr().out)
    assert code == 0
    assert described["summary"]["all"]["ok"] == 1 and described["results"][0]["name"] == "FxgradGain"


def _workers_of(parent_pid):
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        workers = (b"fxgrad.host.check_worker", b"fxgrad.io.check_presets")  # `fxgrad check` runs the second
        if f"\nPPid:\t{parent_pid}\n" in text and any(w in cmdline for w in workers):
            found.append(int(status.parent.name))
    return found


def test_a_hung_worker_goes_with_a_killed_parent(misbehaving):
    parent = subprocess.Popen(
        [sys.executable, "-m", "fxgrad", "check", f"{misbehaving}#hang", "--timeout", "300"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not _workers_of(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _workers_of(parent.pid)
        assert workers, "no worker started"
        time.sleep(1.0)  # let it reach the plugin's endless run()
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(
        Path(f"/proc/{w}/status").exists() and "State:\tZ" not in Path(f"/proc/{w}/status").read_text() for w in workers
    )


def test_the_state_and_preset_probe_reports_round_trips_and_reset(misbehaving):
    """`fxgrad check`'s worker loads each plugin's state and preset in another process: all
    round-trip for a Zam VST3 (values set just before saving included) and fxgrad's own LV2;
    a LADSPA plugin that keeps what it rendered (with no activate() to clear it) resets to a
    fresh instance's sound all the same: fxgrad's reset() takes a new LADSPA instance."""
    targets = [check.Target("/usr/lib/vst3/ZamComp.vst3"), check.Target("fxgrad:Compressor")]
    targets.append(check.Target(f"{misbehaving}#stale"))
    results = by_identifier(check.check(targets, jobs=2, timeout_s=30.0, worker="fxgrad.io.check_presets"))
    zam, own, stale = (results[t.identifier] for t in targets)
    assert (zam["status"], zam["preset_file"], own["preset_file"]) == ("ok", ".vstpreset", ".preset.lv2")
    for result in (zam, own):
        assert result["state_other_process"] and result["preset_other_process"] and result["reset_fresh"], result
    assert own["preset_lilv"] is True and "preset_lilv" not in zam
    assert stale["status"] == "ok" and stale.get("preset_file") is None and stale["state_other_process"]
    assert stale["reset_fresh"] is True and "reset() leaves it unlike" not in check.describe(stale)
    assert "reset() leaves it unlike a fresh instance" in check.describe({**stale, "reset_fresh": False})
    table = check.summarize_round_trips(results.values())
    assert table["VST3"]["preset_other_process"] == "1/1" and table["all"]["reset_fresh"] == "3/3"


def test_a_plugin_unlike_itself_in_another_process_is_not_blamed_on_its_state():
    """ZamHeadX2 (VST3) renders otherwise in the first instance of a process than in later ones:
    the probe's other process renders a fresh instance first, so its state and preset are judged
    as later instances, and the difference is reported as the plugin's own, not the state's."""
    target = check.Target("/usr/lib/vst3/ZamHeadX2.vst3")
    if not Path(target.identifier).exists():
        pytest.skip("ZamHeadX2.vst3 is not installed (apt-get install zam-plugins)")
    (result,) = check.check([target], jobs=1, timeout_s=30.0, worker="fxgrad.io.check_presets")
    assert result["status"] == "ok" and result["run_to_run_spread"] == 0.0, result
    assert result["state_other_process"] and result["preset_other_process"], result
    assert result["fresh_other_process"] is False
    assert "a fresh instance in another process sounds different" in check.describe(result)
