"""What fxgrad tells Ardour about a chain: each plugin's name and parameter units in Ardour, the
points of the automation lanes, the XML that puts the audio on the track, and all of it as the Lua
table ``SPEC`` that ``ardour_session.lua`` reads (:func:`fxgrad.io.session.write_session` runs it).

Values go to Ardour in each format's own units: LV2 and LADSPA ports take plain values, VST3
and VST2 parameters the plugin's normalised ones (what fxgrad's normalised value is for them),
which the Lua program puts on Ardour's scale for the parameter.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..host.plugins import OWN_URI_PREFIX, Chain, own_plugin_path

AUTOMATION_MODES = ("steps", "linear")
_ID_BASE = 10**12  # far above the object IDs Ardour counts from its session file
_ARDOUR_TYPES = {"LV2": "LV2", "VST3": "VST3", "VST2": "LXVST", "LADSPA": "LADSPA"}


@dataclass
class ArdourPlugin:
    """How Ardour names one of the chain's plugins: its ``type`` (ARDOUR.PluginType), ``id``
    (LV2 URI, VST3 class ID, VST2 or LADSPA unique ID, or the plugin's name), and the bundle
    or file fxgrad loaded it from (None for an LV2 plugin found by URI on the LV2 path)."""

    format: str
    type: str
    id: str
    bundle: Optional[Path]


def ardour_plugin(plugin) -> ArdourPlugin:
    """Ardour's name for a loaded plugin (see :class:`ArdourPlugin`)."""
    fmt = plugin.format
    if fmt not in _ARDOUR_TYPES:
        raise ValueError(f"'{plugin.name}' is a {fmt} plugin: Ardour sessions take LV2, VST3, VST2 and LADSPA")
    source = getattr(plugin, "_source", plugin.identifier)
    if fmt == "LV2":
        uri = plugin.identifier
        if uri.startswith(OWN_URI_PREFIX):
            return ArdourPlugin(fmt, "LV2", uri, own_plugin_path(uri[len(OWN_URI_PREFIX) :], "lv2"))
        bundle = Path(source) if os.path.isdir(source) else None
        return ArdourPlugin(fmt, "LV2", uri, bundle)
    path = Path(plugin.identifier.split("#", 1)[0])
    if fmt == "VST3":
        from .presets import vst3_class_id

        return ArdourPlugin(fmt, "VST3", vst3_class_id(plugin), path)
    unique = plugin.info.unique_id.rsplit("-", 1)[-1]
    number = int(unique, 16) if re.fullmatch(r"[0-9a-fA-F]+", unique) else 0
    # Ardour finds a VST2 or LADSPA plugin by its unique ID, or by its name where it has none.
    return ArdourPlugin(fmt, _ARDOUR_TYPES[fmt], str(number) if number else plugin.name, path)


def _host_units(plugin) -> List[bool]:
    """Per parameter: True where Ardour takes the normalised value (VST3, VST2)."""
    return [plugin.format in ("VST3", "VST2")] * len(plugin.parameters)


def _values_now(plugin) -> np.ndarray:
    normalised = _host_units(plugin)
    return np.array([plugin.get(k, normalized=n) for k, n in enumerate(normalised)], np.float64)


def automation_points(
    values: np.ndarray, frame_size: int, samples: int, mode: str = "steps", earlier: int = 0
) -> Tuple[list, list]:
    """``(times, values)`` of one parameter's automation: ``values`` (frames,) in the host's
    units, one per frame of ``frame_size`` samples; times in samples from the clip's start,
    none at or past ``samples``. ``steps``: each frame's value at its first and last sample
    (a run of equal frames at the run's ends only); ``linear``: at each frame's first sample.

    ``earlier`` (samples) moves every point that much earlier: Ardour applies a plugin's
    automation at the latency-compensated time of its output, so a plugin behind ``earlier``
    samples of latency (its own and its predecessors') takes frame k's value that much before
    frame k's input reaches it. The curve then starts at 0 with the value it had at ``earlier``."""
    if mode not in AUTOMATION_MODES:
        raise ValueError(f"automation must be one of {', '.join(AUTOMATION_MODES)}, got {mode!r}")
    values = np.asarray(values, np.float64)
    starts = np.arange(len(values)) * frame_size
    if mode == "linear":
        times, points = starts.tolist(), values.tolist()
    else:
        times, points = [], []
        for k, value in enumerate(values):
            last = min(int(starts[k]) + frame_size, samples) - 1
            if k > 0 and value == values[k - 1]:
                times[-1], points[-1] = last, value  # the run goes on: move its end point
                continue
            times += [int(starts[k]), last] if last > starts[k] else [int(starts[k])]
            points += [value] * (2 if last > starts[k] else 1)
    if earlier <= 0:
        return times, points
    kept = [(t - earlier, v) for t, v in zip(times, points) if t >= earlier]
    held = float(np.interp(earlier, times, points))  # the value Ardour would have had there
    if not kept or kept[0][0] > 0:
        kept.insert(0, (0, held))
    return [t for t, _ in kept], [v for _, v in kept]


def _lanes(chain: Chain, thetas: np.ndarray) -> Dict[Tuple[int, int], np.ndarray]:
    """``{(plugin index, parameter index): (frames,) values in the host's units}`` of the
    learned parameters for normalised ``thetas`` (frames, P); the chain is left at frame 0."""
    where = []
    for name in chain.learned:
        index, _, parameter = name.partition(".")
        where.append((int(index), chain.plugins[int(index)].parameter_index(parameter)))
    per_frame = np.empty((len(thetas), len(where)))
    for k, theta in enumerate(np.asarray(thetas, np.float32)):
        chain.set_learned(np.ascontiguousarray(theta))
        per_frame[k] = [_values_now(chain.plugins[i])[j] for i, j in where]
    chain.set_learned(np.ascontiguousarray(np.asarray(thetas, np.float32)[0]))
    return {key: per_frame[:, column] for column, key in enumerate(where)}


def plugin_specs(chain: Chain, thetas: Optional[np.ndarray], frame_size: int, samples: int, mode: str):
    """Each plugin's entry of the Lua program's SPEC: the value of every parameter it takes (not
    only those off their defaults: hosts differ in the defaults they read from a LADSPA plugin)
    and, with ``thetas``, the learned parameters' points. A learned or pinned parameter that
    Ardour cannot set is an error; another is reported as skipped."""
    lanes = _lanes(chain, thetas) if thetas is not None else {}
    specs, latency = [], 0
    for index, plugin in enumerate(chain.plugins):
        latency += plugin.latency_samples
        named = ardour_plugin(plugin)
        now = _values_now(plugin)
        seen: Dict[str, int] = {}
        values = []
        chosen = {
            name.partition(".")[2]
            for name in list(chain.learned) + [n for n, _ in chain.pinned]
            if name.partition(".")[0] == str(index)
        }
        for j, info in enumerate(plugin.parameters):
            seen[info.name] = seen.get(info.name, 0) + 1
            lane = lanes.get((index, j))
            required = lane is not None or info.id in chosen
            if not (required or info.automatable):
                continue  # a value the plugin reports rather than takes
            value = float(now[j] if lane is None else lane[0])
            entry = {"label": info.name, "occurrence": seen[info.name], "value": value, "required": required}
            if _host_units(plugin)[j]:
                entry["normalised"] = True
                if lane is None and info.minimum != info.maximum:  # the plugin's own reading of it
                    entry["shown"] = float(plugin.get(j))
            if lane is not None:
                entry["times"], entry["points"] = automation_points(lane, frame_size, samples, mode, latency)
                entry["value"] = entry["points"][0]
            values.append(entry)
        specs.append({"name": plugin.name, "type": named.type, "id": named.id, "values": values})
    return specs


def audio_files(audio: np.ndarray, stem: str) -> List[str]:
    channels = audio.shape[0]
    return [f"{stem}.wav"] if channels == 1 else [f"{stem}-{k + 1}.wav" for k in range(channels)]


def region_xml(name: str, samples: int, sources: Sequence[int], region_id: int, whole_file: bool) -> str:
    length = f"@@T:{samples}@@@a0"  # a timecnt_t: distance @ position
    ids = " ".join(f'source-{k}="{s}"' for k, s in enumerate(sources))
    masters = " ".join(f'master-source-{k}="{s}"' for k, s in enumerate(sources))
    return (
        f'<Region name="{name}" muted="0" opaque="1" locked="0" video-locked="0" automatic="0" '
        f'whole-file="{int(whole_file)}" import="0" external="0" sync-marked="0" left-of-split="0" '
        f'right-of-split="0" hidden="0" position-locked="0" valid-transients="0" start="@@T:0@@" '
        f'length="{length}" position="@@T:0@@" sync-position="@@T:0@@" ancestral-start="@@T:0@@" '
        f'ancestral-length="{length}" stretch="1" shift="1" layering-index="0" envelope-active="0" '
        f'default-fade-in="0" default-fade-out="0" fade-in-active="0" fade-out-active="0" scale-amplitude="1" '
        f'id="{region_id}" type="audio" first-edit="nothing" {ids} {masters} channels="{len(sources)}"/>'
    )


def session_xml(files: Sequence[str], samples: int, name: str) -> Dict[str, str]:
    """The XML that puts the staged files on the track (region fades off: the audio plays as
    written) and makes the session's range the clip's."""
    sources = [_ID_BASE + 1 + k for k in range(len(files))]
    source_xml = "".join(
        f'<Source name="{file}" type="audio" flags="" id="{sid}" captured-for="" take-id="" channel="0" '
        f'origin="" gain="1"/>'
        for file, sid in zip(files, sources)
    )
    whole, placed, location = (_ID_BASE + 100 + k for k in range(3))
    return {
        "sources_xml": f"<Sources>{source_xml}</Sources>",
        "regions_xml": f"<Regions>{region_xml(name, samples, sources, whole, True)}</Regions>",
        "playlist_xml": region_xml(name, samples, sources, placed, False),
        "locations_xml": f'<Locations><Location id="{location}" name="session" start="@@T:0@@" '
        f'end="@@T:{samples}@@" flags="IsSessionRange" locked="0" timestamp="0" cue="0"/></Locations>',
    }


def lua_table(value) -> str:
    """A Python value (dict, list, str, number, bool, None) as a Lua constructor."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_table(str(k))}] = {lua_table(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(lua_table(v) for v in value) + "}"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "nil"}[value]
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise ValueError(f"a parameter value is not finite: {value}")
        return repr(float(value))
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
