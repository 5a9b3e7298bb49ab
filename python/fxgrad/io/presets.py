"""Presets a DAW opens, written from a loaded plugin's current state (and read back).

Every value set before a preset is written is in it (the native core hands pending parameter
changes to the plugin first). Per format (what hosts read is in ``docs/daw.md``):

* VST3: a ``.vstpreset`` file, Steinberg's preset format, as Steinberg's own
  ``PresetFile::savePreset`` writes it (the header with the 32-character class ID of the
  plugin's audio processor, the component state ``Comp``, the edit controller's state ``Cont``
  where the plugin's controller saves one, the chunk list), plus a ``MetaInfo`` XML (``Info``)
  naming the preset. Loaded the way JUCE's VST3 host loads one (``PresetFile::loadPreset``).
* VST2: an ``.fxp`` program file as JUCE writes it (big-endian): the plugin's program chunk
  (``FPCh``) where it declares ``programsAreChunks``, else every parameter's value (``FxCk``),
  with the byte size and the preset's name filled in. JUCE's reader loads ``.fxp`` and ``.fxb``.
* LV2: a preset bundle (``NAME.preset.lv2/`` holding ``manifest.ttl`` and the preset's Turtle
  file) with a ``pset:Preset`` that gives every control port's value and the plugin's state
  (``state:state``), serialised by lilv; loaded as lilv reads it.
* LADSPA has no preset file format: :func:`write_presets` reports those plugins as skipped.

A preset loaded back (:func:`load_preset`) into a fresh instance reproduces the plugin's output
bit for bit (for a deterministic plugin).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence
from xml.etree import ElementTree

import numpy as np

from ..base.files import PathLike, atomic_write_bytes

VSTPRESET_SUFFIX = ".vstpreset"
FXP_SUFFIX = ".fxp"
FXB_SUFFIX = ".fxb"
LV2_PRESET_SUFFIX = ".preset.lv2"


class PresetError(ValueError):
    """A preset file that cannot be written for, or loaded into, a plugin (the message says why)."""


def _require(plugin, fmt: str, what: str) -> None:
    if plugin.format != fmt:
        raise PresetError(f"'{plugin.name}' is {plugin.format}, not {fmt}: {what} is for {fmt} plugins")


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


def parse_vstpreset(data: bytes, where: str = "the data") -> VstPreset:
    """The chunks of a .vstpreset file's bytes; raises PresetError when they are not one."""
    if len(data) < 48 or data[:4] != b"VST3":
        raise PresetError(f"{where} is not a .vstpreset file (no VST3 header)")
    class_id = data[8:40].decode("ascii", errors="replace")
    (list_offset,) = struct.unpack_from("<q", data, 40)
    if not 48 <= list_offset <= len(data) - 8 or data[list_offset : list_offset + 4] != b"List":
        raise PresetError(f"{where}: the chunk list is missing or damaged")
    (count,) = struct.unpack_from("<i", data, list_offset + 4)
    chunks = {}
    for k in range(count):
        at = list_offset + 8 + 20 * k
        if at + 20 > len(data):
            raise PresetError(f"{where}: the chunk list is cut short")
        chunk_id = data[at : at + 4]
        offset, size = struct.unpack_from("<qq", data, at + 4)
        if offset < 0 or size < 0 or offset + size > len(data):
            raise PresetError(f"{where}: chunk {chunk_id!r} lies outside the file")
        chunks[chunk_id] = data[offset : offset + size]
    if b"Comp" not in chunks:
        raise PresetError(f"{where} holds no component state (Comp chunk)")
    info = chunks.get(b"Info")
    return VstPreset(class_id, chunks[b"Comp"], chunks.get(b"Cont"), info.decode(errors="replace") if info else None)


def read_vstpreset(path: PathLike) -> VstPreset:
    """Parse a .vstpreset file; raises PresetError when it is not one."""
    return parse_vstpreset(Path(path).read_bytes(), str(path))


def vst3_class_id(plugin) -> str:
    """The 32-character class ID of a loaded VST3 plugin's audio processor, as .vstpreset
    files carry it (from Steinberg's own preset writer)."""
    _require(plugin, "VST3", "a class ID")
    return plugin.vst3_preset[8:40].decode("ascii")


def write_vstpreset(plugin, path: PathLike, name: Optional[str] = None) -> Path:
    """Write a loaded VST3 plugin's current state (every value set so far) as a .vstpreset:
    Steinberg's PresetFile::savePreset output with a MetaInfo chunk naming the preset."""
    _require(plugin, "VST3", "a .vstpreset")
    path = Path(path)
    preset = parse_vstpreset(plugin.vst3_preset, f"the preset of '{plugin.name}'")
    preset.meta_info = _meta_info(plugin, name or path.stem)
    return atomic_write_bytes(path, vstpreset_bytes(preset))


def load_vstpreset(plugin, path: PathLike) -> None:
    """Apply a .vstpreset to a loaded VST3 plugin as JUCE's VST3 host does (checking first that
    it was written for this plugin)."""
    _require(plugin, "VST3", "a .vstpreset")
    data = Path(path).read_bytes()
    preset = parse_vstpreset(data, str(path))
    expected = vst3_class_id(plugin)
    if preset.class_id != expected:
        raise PresetError(f"{path} is for the VST3 class {preset.class_id}, but '{plugin.name}' is {expected}")
    try:
        plugin.load_vst3_preset(data)
    except ValueError as error:
        raise PresetError(f"{path}: {error}") from None


# ---------------------------------------------------------------------------- .fxp / .fxb

# fxProgram / fxChunkSet: 'CcnK', byteSize (of what follows it), fxMagic, version, fxID,
# fxVersion, numParams or numPrograms, a 28-byte name; then the values, or chunkSize and chunk.
_FX_HEADER = struct.Struct(">4si4siiii28s")
_FX_MAGICS = {b"FxCk": "parameters", b"FPCh": "program chunk", b"FxBk": "bank", b"FBCh": "bank chunk"}


@dataclass
class Fxp:
    """The content of an .fxp (or .fxb) file: ``kind`` is its fxMagic (``FxCk``: parameter
    values, ``FPCh``: a program chunk, ``FxBk``/``FBCh``: banks), ``fx_id`` the plugin's unique
    ID (four characters), ``values`` the normalised parameter values of an FxCk program,
    ``chunk`` the opaque data of an FPCh one."""

    kind: str
    fx_id: bytes
    fx_version: int
    count: int
    name: str
    values: Optional[List[float]] = None
    chunk: Optional[bytes] = None


def parse_fxp(data: bytes, where: str = "the data") -> Fxp:
    """Parse an .fxp/.fxb file's bytes; raises PresetError when they are not one."""
    if len(data) < _FX_HEADER.size or data[:4] != b"CcnK":
        raise PresetError(f"{where} is not an .fxp/.fxb file (no 'CcnK' header)")
    _, byte_size, magic, _version, fx_id, fx_version, count, name = _FX_HEADER.unpack_from(data)
    if magic not in _FX_MAGICS:
        raise PresetError(f"{where}: unknown fxMagic {magic!r} (expected one of {sorted(_FX_MAGICS)})")
    preset = Fxp(magic.decode(), struct.pack(">i", fx_id), fx_version, count, name.split(b"\0")[0].decode("latin-1"))
    body = data[_FX_HEADER.size :]
    if magic == b"FxCk":
        if len(body) < 4 * count:
            raise PresetError(f"{where}: {count} parameter values announced, {len(body) // 4} present")
        preset.values = list(struct.unpack(f">{count}f", body[: 4 * count]))
    elif magic == b"FPCh":
        (size,) = struct.unpack_from(">i", body) if len(body) >= 4 else (-1,)
        if size < 0 or len(body) < 4 + size:
            raise PresetError(f"{where}: the program chunk is cut short")
        preset.chunk = body[4 : 4 + size]
    return preset


def _fx_id(plugin) -> bytes:
    return plugin.vst2_program[16:20]


def write_fxp(plugin, path: PathLike, name: Optional[str] = None) -> Path:
    """Write a loaded VST2 plugin's current program as an .fxp: JUCE's program data (a chunk
    where the plugin declares programsAreChunks, else every parameter's value) with the byte
    size set and ``name`` (default: the file's stem) as the program's name."""
    _require(plugin, "VST2", "an .fxp")
    data = bytearray(plugin.vst2_program)
    parse_fxp(bytes(data), f"the program of '{plugin.name}'")  # what JUCE wrote is an .fxp
    struct.pack_into(">i", data, 4, len(data) - 8)  # JUCE leaves byteSize 0
    label = (name or Path(path).stem).encode("latin-1", "replace")[:27]
    data[28:56] = label.ljust(28, b"\0")
    return atomic_write_bytes(Path(path), bytes(data))


def load_fxp(plugin, path: PathLike) -> None:
    """Apply an .fxp or .fxb file to a loaded VST2 plugin as JUCE's VST2 host does (checking
    first that it was written for this plugin)."""
    _require(plugin, "VST2", "an .fxp/.fxb")
    data = Path(path).read_bytes()
    preset = parse_fxp(data, str(path))
    expected = _fx_id(plugin)
    if preset.fx_id != expected:
        raise PresetError(f"{path} is for the VST2 plugin ID {preset.fx_id!r}, but '{plugin.name}' is {expected!r}")
    plugin.load_plugin_data(data)


# ---------------------------------------------------------------------------- LV2 preset bundles


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "preset"


def _turtle_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_lv2_preset(plugin, bundle: PathLike, name: Optional[str] = None) -> Path:
    """Write a loaded LV2 plugin's current state as a preset bundle ``bundle`` (a folder, by
    convention ending in ``.preset.lv2``; one already there is replaced). Returns its path."""
    _require(plugin, "LV2", "an LV2 preset")
    bundle = Path(bundle)
    if name is None:
        name = bundle.name[: -len(LV2_PRESET_SUFFIX)] if bundle.name.endswith(LV2_PRESET_SUFFIX) else bundle.stem
    preset_file = f"{_slug(name)}.ttl"
    turtle = plugin.lv2_preset((bundle.resolve() / preset_file).as_uri(), name)
    manifest = (
        "@prefix lv2: <http://lv2plug.in/ns/lv2core#> .\n"
        "@prefix pset: <http://lv2plug.in/ns/ext/presets#> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n\n"
        f"<{preset_file}>\n\ta pset:Preset ;\n\tlv2:appliesTo <{plugin.identifier}> ;\n"
        f"\trdfs:label {_turtle_string(name)} ;\n\trdfs:seeAlso <{preset_file}> .\n"
    )
    # The bundle is made beside its place and moved there whole.
    bundle.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.", dir=bundle.parent))
    try:
        atomic_write_bytes(staging / preset_file, turtle)
        atomic_write_bytes(staging / "manifest.ttl", manifest.encode())
        if bundle.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.old.", dir=bundle.parent))
            os.replace(bundle, old / bundle.name)
            os.replace(staging, bundle)
            shutil.rmtree(old)
        else:
            os.replace(staging, bundle)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle


def lv2_preset_file(path: PathLike) -> Path:
    """The preset's Turtle file of an LV2 preset bundle (or ``path`` itself, a .ttl file)."""
    path = Path(path)
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
    """Apply an LV2 preset (a bundle folder or its preset .ttl), as lilv reads it, to a loaded
    LV2 plugin."""
    _require(plugin, "LV2", "an LV2 preset")
    try:
        plugin.load_lv2_preset(str(lv2_preset_file(path).resolve()))
    except ValueError as error:
        raise PresetError(str(error)) from None


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


_WRITERS = {
    "VST3": (VSTPRESET_SUFFIX, write_vstpreset),
    "VST2": (FXP_SUFFIX, write_fxp),
    "LV2": (LV2_PRESET_SUFFIX, write_lv2_preset),
}


def preset_path(plugin, folder: PathLike, index: int, name: str) -> Optional[Path]:
    """Where :func:`write_presets` puts plugin ``index``'s preset in ``folder`` (None for a
    format without preset files)."""
    if plugin.format not in _WRITERS:
        return None
    return Path(folder) / f"{index}-{_slug(plugin.name)}-{_slug(name)}{_WRITERS[plugin.format][0]}"


def write_presets(chain, folder: PathLike, name: str, theta: Optional[Sequence[float]] = None) -> List[PresetFile]:
    """A preset per plugin of ``chain`` (at its current settings; with ``theta``, the chain's
    learned parameters are set to those normalised values first and stay so) in ``folder``:
    ``INDEX-PLUGIN-NAME.vstpreset`` for VST3, ``.fxp`` for VST2, ``.preset.lv2/`` for LV2."""
    if theta is not None:
        chain.set_learned(np.ascontiguousarray(theta, dtype=np.float32))
    written = []
    for index, plugin in enumerate(chain.plugins):
        path = preset_path(plugin, folder, index, name)
        if path is None:
            note = f"{plugin.format} has no preset file format; the settings are in the JSON"
            written.append(PresetFile(index, plugin.name, plugin.format, None, note))
        else:
            path = _WRITERS[plugin.format][1](plugin, path, name)
            written.append(PresetFile(index, plugin.name, plugin.format, path))
    return written


def load_preset(plugin, path: PathLike) -> None:
    """Apply a .vstpreset, .fxp/.fxb or LV2 preset (bundle or .ttl) file to a loaded plugin."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such preset: {path}")
    suffix = path.suffix.lower()
    if suffix == VSTPRESET_SUFFIX:
        load_vstpreset(plugin, path)
    elif suffix in (FXP_SUFFIX, FXB_SUFFIX):
        load_fxp(plugin, path)
    elif path.is_dir() or suffix == ".ttl":
        load_lv2_preset(plugin, path)
    else:
        raise PresetError(f"{path}: a preset is a .vstpreset, .fxp or .fxb file, or an LV2 preset bundle")
