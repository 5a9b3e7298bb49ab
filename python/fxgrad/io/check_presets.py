"""``fxgrad check``'s state and preset probe: random settings saved as fxgrad's state and as the
format's preset file, loaded in a fresh instance in another process and rendered, and whether
``reset()`` returns a plugin to a fresh instance's sound.

A worker of ``fxgrad check`` runs ``python -m fxgrad.io.check_presets``: the probe of
:mod:`fxgrad.host.check_worker` (load, render, determinism, reset, state) and then
:func:`probe_presets`, which

1. sets random settings, renders noise, then sets other random values *without* rendering
   (values set just before saving, the case a host's state can miss);
2. renders the noise with two fresh instances at those settings (the expected output, and the
   plugin's own run-to-run spread, 0 for a deterministic plugin);
3. saves ``plugin.state`` and the preset file a DAW opens (:func:`fxgrad.io.presets.write_presets`'
   writers: .vstpreset, .fxp, LV2 bundle; none for LADSPA); an LV2 preset is also read by lilv
   (:mod:`fxgrad.io.lilv`), whose port values must be the plugin's;
4. a fresh process (``python -m fxgrad.io.check_presets --render JOB``) first renders the noise
   with a new instance given the settings as values (``fresh_other_process``: whether the plugin
   sounds the same in another process at all; ZamHeadX2's first instance in a process does not),
   then loads the state into a new instance and the preset into another, renders with each, and
   the outputs are compared with the expected one (equal, or within the spread; for fxgrad's own
   plugins, whose state carries their DSP state, with the plugin's own continuation);
5. ``reset()`` on the first instance (which has rendered and had its settings changed) and a
   render: equal to the fresh instances' output (``reset_fresh``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..host.check_worker import _noise, _varied, probe, serve
from ..host.plugins import own_plugin_path
from .lilv import LilvUnavailable, host_lv2_path, lilv_presets
from .presets import write_fxp, write_lv2_preset, write_vstpreset

#: Seconds the fresh process may take (it loads the plugin twice and renders twice).
FRESH_PROCESS_TIMEOUT_S = 60.0

_WRITERS = {"VST3": ("preset.vstpreset", write_vstpreset), "VST2": ("preset.fxp", write_fxp)}


def probe_with_presets(**task: Any) -> Dict[str, Any]:
    """:func:`fxgrad.host.check_worker.probe`, then (if it found the plugin ok)
    :func:`probe_presets`, whose findings are added to its result."""
    result = probe(**task)
    if result.get("status") == "ok":
        stage = task.get("stage", lambda *_: None)
        stage("state and preset in another process", None, {k: result[k] for k in ("name", "format")})
        try:
            result.update(probe_presets(**{k: v for k, v in task.items() if k != "stage"}))
        except Exception as error:  # a fault of this step is reported like the probe's own
            result.update(status="error", error=type(error).__name__, message=str(error))
            result["stage"] = "state and preset in another process"
    return result


def _load(identifier: str, select: str, options: Dict[str, Any]):
    import fxgrad

    return fxgrad.load(identifier, plugin=select, **options)


def _randomize(plugin, varied: List[Any], rng) -> None:
    for p, v in zip(varied, rng.random(len(varied))):
        plugin.set(p.index, float(v), normalized=True)


def _spread(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def probe_presets(
    identifier: str,
    select: str = "",
    seed: int = 0,
    sample_rate: float = 44100.0,
    block_size: int = 512,
    channels: int = 2,
    **_: Any,
) -> Dict[str, Any]:
    """The state and preset round trip through another process, and reset freshness, for one
    plugin. Returns ``reset_fresh``, ``run_to_run_spread`` (the largest sample difference of two
    fresh instances at the same settings), ``fresh_other_process`` (a fresh instance given the
    settings in another process renders as here), ``state_other_process`` (the state loaded elsewhere
    renders as the plugin), ``preset_file`` (the kind written, or None), ``preset_other_process``
    and, for LV2, ``preset_lilv`` (lilv reads the plugin's port values from it); a failure's
    detail in ``preset_note``."""
    options = dict(sample_rate=sample_rate, block_size=block_size, channels=channels)
    rng = np.random.default_rng([seed, 7, zlib.crc32(f"{identifier}#{select}".encode())])
    x = _noise(channels, max(block_size, int(sample_rate) // 4), seed + 2)
    plugin = _load(identifier, select, options)
    varied = _varied(plugin)
    _randomize(plugin, varied, rng)
    plugin.process(x)
    _randomize(plugin, varied, rng)  # set just before saving: no render in between
    normalized = [plugin.get(p.index, normalized=True) for p in plugin.parameters]
    fresh = []
    for _ in range(2):
        instance = _load(identifier, select, options)
        for p, v in zip(plugin.parameters, normalized):
            instance.set(p.index, v, normalized=True)
        fresh.append(instance.process(x))
    expected, spread = fresh[0], _spread(fresh[0], fresh[1])
    found: Dict[str, Any] = {"run_to_run_spread": spread}
    notes = []
    with tempfile.TemporaryDirectory(prefix="fxgrad-check-presets-") as folder:
        folder = Path(folder)
        (folder / "state.bin").write_bytes(plugin.state)
        preset = _write_preset(plugin, folder, found, notes)
        np.save(folder / "audio.npy", x)
        job = {"identifier": identifier, "select": select, "options": options, "folder": str(folder), "preset": preset}
        job["values"] = [[p.index, v] for p, v in zip(plugin.parameters, normalized)]
        # A state of fxgrad's own plugins carries their DSP state: it continues where the plugin was.
        saved = plugin.process(x) if plugin.has_dsp_snapshot else expected
        rendered = _render_elsewhere(job, folder)
        if "error" in rendered:
            notes.append(rendered["error"])
            found["fresh_other_process"] = found["state_other_process"] = False
            found["preset_other_process"] = False if preset else None
        else:
            for key, name in (
                ("fresh_other_process", "fresh"),
                ("state_other_process", "state"),
                ("preset_other_process", "preset"),
            ):
                if name not in rendered:
                    found[key] = None if name == "preset" and not preset else False
                    continue
                difference = _spread(np.load(rendered[name]), expected if name == "fresh" else saved)
                found[key] = bool(difference <= spread)
                if difference > spread:
                    what = "a fresh instance in" if name == "fresh" else f"{name} loaded in"
                    notes.append(f"{what} another process differs by {difference:.3g} (spread {spread:.3g})")
            notes.extend(rendered.get("notes", []))
    plugin.reset()
    reset_difference = _spread(plugin.process(x), expected)
    found["reset_fresh"] = bool(reset_difference <= spread)
    if reset_difference > spread:
        notes.append(f"after reset() it differs from a fresh instance by {reset_difference:.3g}")
    if notes:
        found["preset_note"] = "; ".join(notes)
    return found


def _write_preset(plugin, folder: Path, found: Dict[str, Any], notes: List[str]) -> Optional[str]:
    """The format's preset file for ``plugin`` in ``folder`` (None for LADSPA); an LV2 one is
    read back by lilv."""
    if plugin.format == "LV2":
        bundle = write_lv2_preset(plugin, folder / "presets" / "check.preset.lv2", name="fxgrad check")
        found["preset_file"] = ".preset.lv2"
        found["preset_lilv"] = _lilv_agrees(plugin, folder / "presets", notes)
        return str(bundle)
    if plugin.format in _WRITERS:
        file_name, write = _WRITERS[plugin.format]
        found["preset_file"] = Path(file_name).suffix
        return str(write(plugin, folder / file_name, name="fxgrad check"))
    found["preset_file"] = None
    return None


def _lilv_agrees(plugin, presets: Path, notes: List[str]) -> Optional[bool]:
    """Whether lilv reads the check's preset with the plugin's port values (None without lilv)."""
    search = host_lv2_path([presets, own_plugin_path("Compressor", "lv2").parent])
    try:
        read = [p for p in lilv_presets(plugin.identifier, search) if p.label == "fxgrad check"]
    except (LilvUnavailable, KeyError) as error:
        notes.append(f"lilv: {error}")
        return None
    if len(read) != 1 or read[0].values is None or read[0].errors:
        notes.append(f"lilv did not read the preset: {read[0].errors if read else 'not found'}")
        return False
    values = read[0].values
    wrong = [
        p.id
        for p in plugin.parameters
        if p.id in values
        and not np.isclose(values[p.id], plugin.get(p.index), rtol=1e-6, atol=1e-6 * (p.maximum - p.minimum))
    ]
    if wrong:
        notes.append(f"lilv reads other values for {', '.join(wrong[:5])}")
    return not wrong


def _render_elsewhere(job: Dict[str, Any], folder: Path) -> Dict[str, Any]:
    """Run :func:`_render_job` in a fresh interpreter; its answer, or ``{"error": ...}``."""
    (folder / "job.json").write_text(json.dumps(job))
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fxgrad.io.check_presets", "--render", str(folder / "job.json")],
            capture_output=True,
            text=True,
            timeout=FRESH_PROCESS_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"the fresh process did not finish within {FRESH_PROCESS_TIMEOUT_S:g} s"}
    answer = folder / "answer.json"
    if done.returncode != 0 or not answer.is_file():
        tail = " | ".join(line for line in done.stderr.strip().splitlines()[-3:])
        return {"error": f"the fresh process ended with status {done.returncode}: {tail}"}
    return json.loads(answer.read_text())


def _render_job(path: str) -> None:
    """The fresh process: a new instance given the job's values, then one loading the state and
    one the preset; each renders the job's audio, and the outputs (and any failure) are written
    beside the job. The first instance of a process takes any first-instance difference a
    plugin has (a table it fills once per process), so the state's and preset's are later ones,
    as in the probe's own process."""
    from .presets import load_preset

    job = json.loads(Path(path).read_text())
    folder = Path(job["folder"])
    audio = np.load(folder / "audio.npy")
    answer: Dict[str, Any] = {"notes": []}
    for name, apply in (
        ("fresh", lambda p: [p.set(k, v, normalized=True) for k, v in job["values"]]),
        ("state", lambda p: p.load_state((folder / "state.bin").read_bytes())),
        ("preset", (lambda p: load_preset(p, job["preset"])) if job["preset"] else None),
    ):
        if apply is None:
            continue
        try:
            plugin = _load(job["identifier"], job["select"], job["options"])
            apply(plugin)
            np.save(folder / f"{name}.npy", plugin.process(audio))
            answer[name] = str(folder / f"{name}.npy")
        except Exception as error:  # reported to the probe, which says what failed
            answer["notes"].append(f"loading the {name} failed: {type(error).__name__}: {error}")
    (folder / "answer.json").write_text(json.dumps(answer))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--render"]:
        _render_job(sys.argv[2])
        sys.exit(0)
    sys.exit(serve(probe_with_presets))
