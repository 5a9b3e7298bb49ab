"""Presets a DAW opens, written from a loaded plugin's current state (and read back).

* VST3: a ``.vstpreset`` file, Steinberg's preset format: the header (``VST3``, version 1, the
  32-character class ID of the plugin's audio processor, the offset of the chunk list), the
  component state (``Comp``) and the edit controller state (``Cont``) as the plugin itself saved
  them, a ``MetaInfo`` XML (``Info``) and the chunk list (``List``). JUCE's VST3 host keeps both
  states in its state XML; they go into the file unchanged. DAWs look for them under
  ``~/.vst3/presets/VENDOR/PLUGIN/``.
* LV2: a preset bundle (``NAME.preset.lv2/`` holding ``manifest.ttl`` and the preset's Turtle
  file) with a ``pset:Preset`` that gives every control port's value and the plugin's state
  (``state:state``), as lilv writes them; Ardour, Carla, jalv and ``lv2info`` find it on
  ``LV2_PATH`` (e.g. in ``~/.lv2/``).
* LADSPA has no preset file format, and VST2 plugins cannot be hosted yet (``.fxp``/``.fxb``
  will follow them); :func:`write_presets` reports those plugins as skipped.

A preset loaded back (:func:`load_preset`) into a fresh instance reproduces the plugin's output
bit for bit.
"""

from __future__ import annotations

import json
import os
import platform
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Sequence, Tuple
from xml.etree import ElementTree

import numpy as np

from ..base.files import PathLike, atomic_write_bytes

VSTPRESET_SUFFIX = ".vstpreset"
LV2_PRESET_SUFFIX = ".preset.lv2"


class PresetError(ValueError):
    """A preset file that cannot be written for, or loaded into, a plugin (the message says why)."""


# ---------------------------------------------------------------------------- JUCE's state blobs

# JUCE's MemoryBlock::toBase64Encoding: "SIZE." then 6-bit groups of the bytes read as one
# little-endian bit stream, in its own alphabet (not RFC 4648).
_JUCE_ALPHABET = np.frombuffer(b".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+", np.uint8)
_JUCE_DECODE = np.full(256, 255, np.uint8)
_JUCE_DECODE[_JUCE_ALPHABET] = np.arange(64, dtype=np.uint8)
_JUCE_XML_MAGIC = 0x21324356  # AudioProcessor::copyXmlToBinary


def _juce_base64_encode(data: bytes) -> str:
    size = len(data)
    chars = (size * 8 + 5) // 6
    padded = np.zeros(-(-size // 3) * 3, np.uint32)
    padded[:size] = np.frombuffer(data, np.uint8)
    groups = padded[0::3] | (padded[1::3] << 8) | (padded[2::3] << 16)  # 24 bits = 4 characters
    sixes = np.stack([(groups >> shift) & 63 for shift in (0, 6, 12, 18)], axis=1).reshape(-1)[:chars]
    return f"{size}." + _JUCE_ALPHABET[sixes].tobytes().decode("ascii")


def _juce_base64_decode(text: str) -> bytes:
    size_text, dot, body = text.strip().partition(".")
    if not dot or not size_text.isdigit():
        raise PresetError("not JUCE's base64 encoding (no 'SIZE.' prefix)")
    size = int(size_text)
    values = _JUCE_DECODE[np.frombuffer(body.encode("ascii"), np.uint8)]
    values = values[values != 255].astype(np.uint32)
    values = np.concatenate([values, np.zeros(-len(values) % 4, np.uint32)])
    groups = values[0::4] | (values[1::4] << 6) | (values[2::4] << 12) | (values[3::4] << 18)
    data = np.stack([(groups >> shift) & 255 for shift in (0, 8, 16)], axis=1).reshape(-1).astype(np.uint8)
    if len(data) < size:
        raise PresetError(f"JUCE base64 data holds {len(data)} bytes, its header says {size}")
    return data[:size].tobytes()


def _juce_vst3_states(blob: bytes) -> Tuple[bytes, Optional[bytes]]:
    """(component state, controller state or None) from JUCE's VST3 host state."""
    if len(blob) < 9 or struct.unpack_from("<I", blob)[0] != _JUCE_XML_MAGIC:
        raise PresetError("the plugin's state is not JUCE's VST3 state XML")
    length = struct.unpack_from("<I", blob, 4)[0]
    root = ElementTree.fromstring(blob[8 : 8 + length].rstrip(b"\0"))
    component = root.find("IComponent")
    if component is None or not (component.text or "").strip():
        raise PresetError("the plugin saved no component state")
    controller = root.find("IEditController")
    return (
        _juce_base64_decode(component.text),
        _juce_base64_decode(controller.text) if controller is not None and controller.text else None,
    )


def _juce_vst3_blob(component: bytes, controller: Optional[bytes]) -> bytes:
    """JUCE's VST3 host state for the two chunks (what ``Plugin.load_state`` takes)."""
    xml = "<VST3PluginState><IComponent>" + _juce_base64_encode(component) + "</IComponent>"
    if controller is not None:
        xml += "<IEditController>" + _juce_base64_encode(controller) + "</IEditController>"
    text = ('<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "</VST3PluginState>").encode()
    return struct.pack("<II", _JUCE_XML_MAGIC, len(text)) + text + b"\0"


# ---------------------------------------------------------------------------- VST3 class IDs


def _vst3_binary(bundle: Path) -> Path:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine())
    folder = bundle / "Contents" / f"{machine}-linux"
    found = sorted(folder.glob("*.so")) if folder.is_dir() else []
    if not found:
        raise PresetError(f"{bundle} holds no {folder.name}/*.so: not a Linux VST3 bundle for this machine")
    return found[0]


def _print_vst3_classes(binary: str) -> None:
    """Print the module's factory classes as JSON (run in a child process: see vst3_classes)."""
    import ctypes

    class ClassInfo(ctypes.Structure):  # Steinberg::PClassInfo
        _fields_ = [
            ("cid", ctypes.c_ubyte * 16),
            ("cardinality", ctypes.c_int32),
            ("category", ctypes.c_char * 32),
            ("name", ctypes.c_char * 64),
        ]

    library = ctypes.CDLL(binary)
    entry = getattr(library, "ModuleEntry", None)
    if entry is not None:
        entry.argtypes, entry.restype = [ctypes.c_void_p], ctypes.c_bool
        entry(library._handle)
    get_factory = library.GetPluginFactory
    get_factory.restype = ctypes.c_void_p
    factory = get_factory()
    if not factory:
        raise SystemExit("GetPluginFactory returned nothing")
    table = ctypes.cast(ctypes.cast(factory, ctypes.POINTER(ctypes.c_void_p))[0], ctypes.POINTER(ctypes.c_void_p))
    # IPluginFactory's vtable: queryInterface, addRef, release, getFactoryInfo, countClasses, getClassInfo.
    count = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)(table[4])(factory)
    class_info = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ClassInfo))(table[5])
    classes = []
    for index in range(count):
        info = ClassInfo()
        if class_info(factory, index, ctypes.byref(info)) == 0:
            classes.append(
                {
                    "cid": bytes(info.cid).hex().upper(),
                    "category": info.category.decode(errors="replace"),
                    "name": info.name.decode(errors="replace"),
                }
            )
    ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p)(table[2])(factory)
    print(json.dumps(classes))


@lru_cache(maxsize=None)
def vst3_classes(bundle: str) -> Tuple[Tuple[str, str, str], ...]:
    """``(class ID, category, name)`` of every class a VST3 bundle's factory declares. The
    module is opened in a child process, so a plugin's own start-up or shut-down cannot disturb
    this one."""
    binary = _vst3_binary(Path(bundle))
    package_parent = str(Path(__file__).resolve().parents[2])
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from fxgrad.io.presets import _print_vst3_classes; _print_vst3_classes(sys.argv[1])",
            str(binary),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    if done.returncode != 0 or not lines:
        raise PresetError(f"cannot read the class IDs of {binary}: {done.stderr.strip()[-400:] or 'no output'}")
    return tuple((c["cid"], c["category"], c["name"]) for c in json.loads(lines[-1]))


def vst3_class_id(plugin) -> str:
    """The 32-character class ID of a loaded VST3 plugin's audio processor, as .vstpreset
    files carry it."""
    classes = [c for c in vst3_classes(str(Path(plugin.identifier).resolve())) if c[1] == "Audio Module Class"]
    if not classes:
        raise PresetError(f"{plugin.identifier} declares no audio processor class")
    named = [c for c in classes if c[2] == plugin.name]
    return (named or classes)[0][0]


# ---------------------------------------------------------------------------- .vstpreset


@dataclass
class VstPreset:
    """The content of a .vstpreset file."""

    class_id: str
    component: bytes
    controller: Optional[bytes]
    meta_info: Optional[str] = None


def _meta_info(plugin, name: str) -> str:
    attributes = [
        ("MediaType", "VstPreset"),
        ("PlugInName", plugin.name),
        ("PlugInVendor", plugin.vendor),
        ("MediaName", name),
    ]
    root = ElementTree.Element("MetaInfo")
    for key, value in attributes:
        ElementTree.SubElement(root, "Attr", id=key, value=value, type="string", flags="writeProtected")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def vstpreset_bytes(preset: VstPreset) -> bytes:
    """Steinberg's .vstpreset layout: header (48 bytes), the chunks' data, the chunk list."""
    if not re.fullmatch(r"[0-9A-F]{32}", preset.class_id):
        raise PresetError(f"a VST3 class ID is 32 hexadecimal digits, got {preset.class_id!r}")
    chunks = [(b"Comp", preset.component)]
    if preset.controller is not None:
        chunks.append((b"Cont", preset.controller))
    if preset.meta_info is not None:
        chunks.append((b"Info", preset.meta_info.encode()))
    body, entries, offset = bytearray(), [], 48
    for chunk_id, data in chunks:
        entries.append((chunk_id, offset, len(data)))
        body += data
        offset += len(data)
    listing = (
        b"List"
        + struct.pack("<i", len(entries))
        + b"".join(chunk_id + struct.pack("<qq", at, size) for chunk_id, at, size in entries)
    )
    header = b"VST3" + struct.pack("<i", 1) + preset.class_id.encode("ascii") + struct.pack("<q", offset)
    return header + bytes(body) + listing


def read_vstpreset(path: PathLike) -> VstPreset:
    """Parse a .vstpreset file; raises PresetError when it is not one."""
    data = Path(path).read_bytes()
    if len(data) < 48 or data[:4] != b"VST3":
        raise PresetError(f"{path} is not a .vstpreset file (no VST3 header)")
    class_id = data[8:40].decode("ascii", errors="replace")
    (list_offset,) = struct.unpack_from("<q", data, 40)
    if not 48 <= list_offset <= len(data) - 8 or data[list_offset : list_offset + 4] != b"List":
        raise PresetError(f"{path}: the chunk list is missing or damaged")
    (count,) = struct.unpack_from("<i", data, list_offset + 4)
    chunks = {}
    for k in range(count):
        at = list_offset + 8 + 20 * k
        if at + 20 > len(data):
            raise PresetError(f"{path}: the chunk list is cut short")
        chunk_id = data[at : at + 4]
        offset, size = struct.unpack_from("<qq", data, at + 4)
        if offset < 0 or size < 0 or offset + size > len(data):
            raise PresetError(f"{path}: chunk {chunk_id!r} lies outside the file")
        chunks[chunk_id] = data[offset : offset + size]
    if b"Comp" not in chunks:
        raise PresetError(f"{path} holds no component state (Comp chunk)")
    info = chunks.get(b"Info")
    return VstPreset(class_id, chunks[b"Comp"], chunks.get(b"Cont"), info.decode(errors="replace") if info else None)


def write_vstpreset(plugin, path: PathLike, name: Optional[str] = None) -> Path:
    """Write a loaded VST3 plugin's current state (parameters included) as a .vstpreset.

    The plugin first processes one block of silence: JUCE's VST3 host hands values set since
    the last block to the plugin only inside a block with audio (DPF's plugins, Zam's, ignore
    them in an empty one), and the state is the plugin's own. Its DSP state moves on by it."""
    if plugin.format != "VST3":
        raise PresetError(f"'{plugin.name}' is {plugin.format}, not VST3: no .vstpreset")
    path = Path(path)
    plugin.process(np.zeros((plugin.channels, plugin.block_size), np.float32))
    component, controller = _juce_vst3_states(plugin.plugin_data)
    preset = VstPreset(vst3_class_id(plugin), component, controller, _meta_info(plugin, name or path.stem))
    return atomic_write_bytes(path, vstpreset_bytes(preset))


def load_vstpreset(plugin, path: PathLike) -> None:
    """Apply a .vstpreset to a loaded VST3 plugin (checking that it was written for it)."""
    if plugin.format != "VST3":
        raise PresetError(f"'{plugin.name}' is {plugin.format}: a .vstpreset is for VST3 plugins")
    preset = read_vstpreset(path)
    expected = vst3_class_id(plugin)
    if preset.class_id != expected:
        raise PresetError(f"{path} is for the VST3 class {preset.class_id}, but '{plugin.name}' is {expected}")
    plugin.load_plugin_data(_juce_vst3_blob(preset.component, preset.controller))


# ---------------------------------------------------------------------------- LV2 preset bundles

_SAVED_STATE = re.compile(r"<([^<>\s]*/savedState)>")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "preset"


def _turtle_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _plugin_uri(plugin) -> str:
    if plugin.format != "LV2":
        raise PresetError(f"'{plugin.name}' is {plugin.format}, not LV2: no LV2 preset")
    return plugin.identifier  # JUCE's LV2 host identifies a plugin by its URI


def write_lv2_preset(plugin, bundle: PathLike, name: Optional[str] = None) -> Path:
    """Write a loaded LV2 plugin's current state as a preset bundle ``bundle`` (a folder, by
    convention ending in ``.preset.lv2``). Returns the bundle's path."""
    bundle = Path(bundle)
    if name is None:
        name = bundle.name[: -len(LV2_PRESET_SUFFIX)] if bundle.name.endswith(LV2_PRESET_SUFFIX) else bundle.stem
    uri = _plugin_uri(plugin)
    state = plugin.plugin_data.decode()
    # JUCE's host has lilv write the state as a pset:Preset named PLUGIN/savedState; in the
    # bundle the preset is the Turtle file itself (<>), as lilv_state_save writes presets.
    subject = _SAVED_STATE.search(state)
    if subject is None or "pset:Preset" not in state:
        raise PresetError(f"the state of '{plugin.name}' is not an LV2 preset document")
    body = state[: subject.start()] + "<>" + state[subject.end() :]
    body = body.replace("a pset:Preset", "a pset:Preset ;\n\trdfs:label " + _turtle_string(name), 1)
    if "@prefix rdfs:" not in body:
        body = "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n" + body
    preset_file = f"{_slug(name)}.ttl"
    manifest = (
        "@prefix lv2: <http://lv2plug.in/ns/lv2core#> .\n"
        "@prefix pset: <http://lv2plug.in/ns/ext/presets#> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n\n"
        f"<{preset_file}>\n\ta pset:Preset ;\n\tlv2:appliesTo <{uri}> ;\n"
        f"\trdfs:label {_turtle_string(name)} ;\n\trdfs:seeAlso <{preset_file}> .\n"
    )
    atomic_write_bytes(bundle / preset_file, body.encode())
    atomic_write_bytes(bundle / "manifest.ttl", manifest.encode())
    return bundle


def _lv2_preset_file(path: Path) -> Path:
    if path.is_file():
        return path
    manifest = path / "manifest.ttl"
    if not manifest.is_file():
        raise PresetError(f"{path} is neither an LV2 preset bundle (no manifest.ttl) nor a preset file")
    seen = re.findall(r"rdfs:seeAlso\s+<([^<>]+\.ttl)>", manifest.read_text())
    files = [path / f for f in seen if (path / f).is_file()]
    if len(files) != 1:
        raise PresetError(f"{path}/manifest.ttl must name exactly one preset file, found {seen}")
    return files[0]


def load_lv2_preset(plugin, path: PathLike) -> None:
    """Apply an LV2 preset (a bundle folder or its preset .ttl) to a loaded LV2 plugin."""
    uri = _plugin_uri(plugin)
    preset_file = _lv2_preset_file(Path(path))
    text = preset_file.read_text()
    applies = re.search(r"lv2:appliesTo\s+<([^<>]+)>", text)
    if applies is None or applies.group(1) != uri:
        raise PresetError(f"{preset_file} applies to {applies.group(1) if applies else 'no plugin'}, not to {uri}")
    # lilv reads a state string without a base URI: name the preset absolutely.
    absolute = re.sub(r"<>", "<" + preset_file.resolve().as_uri() + ">", text)
    plugin.load_plugin_data(absolute.encode())


# ---------------------------------------------------------------------------- whole chains


@dataclass
class PresetFile:
    """One plugin's preset written by :func:`write_presets`: ``path`` is None when the
    plugin's format has no preset file (``note`` says why)."""

    plugin: int
    name: str
    format: str
    path: Optional[Path]
    note: str = ""


def preset_path(plugin, folder: PathLike, index: int, name: str) -> Optional[Path]:
    """Where :func:`write_presets` puts plugin ``index``'s preset in ``folder``."""
    base = f"{index}-{_slug(plugin.name)}-{_slug(name)}"
    if plugin.format == "VST3":
        return Path(folder) / (base + VSTPRESET_SUFFIX)
    if plugin.format == "LV2":
        return Path(folder) / (base + LV2_PRESET_SUFFIX)
    return None


def write_presets(chain, folder: PathLike, name: str, theta: Optional[Sequence[float]] = None) -> List[PresetFile]:
    """A preset per plugin of ``chain`` (at its current settings; with ``theta``, the chain's
    learned parameters are set to those normalised values first and stay so) in ``folder``:
    ``INDEX-PLUGIN-NAME.vstpreset`` for VST3, ``INDEX-PLUGIN-NAME.preset.lv2/`` for LV2."""
    if theta is not None:
        chain.set_learned(np.ascontiguousarray(theta, dtype=np.float32))
    written = []
    for index, plugin in enumerate(chain.plugins):
        path = preset_path(plugin, folder, index, name)
        if plugin.format == "VST3":
            written.append(PresetFile(index, plugin.name, plugin.format, write_vstpreset(plugin, path, name)))
        elif plugin.format == "LV2":
            written.append(PresetFile(index, plugin.name, plugin.format, write_lv2_preset(plugin, path, name)))
        else:
            written.append(
                PresetFile(
                    index,
                    plugin.name,
                    plugin.format,
                    None,
                    f"{plugin.format} has no preset file format; the settings are in the JSON",
                )
            )
    return written


def load_preset(plugin, path: PathLike) -> None:
    """Apply a .vstpreset file or an LV2 preset (bundle or .ttl) to a loaded plugin."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such preset: {path}")
    if path.suffix.lower() == VSTPRESET_SUFFIX:
        load_vstpreset(plugin, path)
    elif path.is_dir() or path.suffix.lower() == ".ttl":
        load_lv2_preset(plugin, path)
    else:
        raise PresetError(f"{path}: a preset is a .vstpreset file or an LV2 preset bundle")
