"""LV2 presets as the hosts' own library reads them: liblilv (what Ardour, Carla, jalv and
``lv2info`` use) through ctypes, so that a preset fxgrad writes is judged by lilv, not by fxgrad.

:func:`lilv_presets` loads every bundle on ``lv2_path`` the way a host starts (``lilv_world_load_all``
with ``LV2_PATH``), finds the plugin's presets (``pset:Preset`` resources related to it), loads
each one (``lilv_world_load_resource``, then ``lilv_state_new_from_world``, as a host applies a
preset) and returns what lilv read: the label, the port values and how many ``state:state``
properties it holds. A preset that lilv cannot parse comes back with ``values=None`` and lilv's
own messages in ``errors``.

Needs the shared library ``liblilv-0.so.0`` (Debian's ``liblilv-0-0``, which ``lilv-utils``
brings); :class:`LilvUnavailable` says so when it is missing.
"""

from __future__ import annotations

import ctypes
import os
import struct
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..base.files import PathLike

_FLOAT, _DOUBLE, _INT, _LONG, _BOOL = (
    "http://lv2plug.in/ns/ext/atom#" + kind for kind in ("Float", "Double", "Int", "Long", "Bool")
)
_PRESET = "http://lv2plug.in/ns/ext/presets#Preset"
_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"


#: The folders a host searches when LV2_PATH is not set (lilv's own default on Linux, and the
#: Debian/Ubuntu multiarch folder some packages use).
STANDARD_LV2_PATH = ("~/.lv2", "/usr/lib/lv2", "/usr/local/lib/lv2", "/usr/lib/x86_64-linux-gnu/lv2")


def host_lv2_path(extra: Sequence[PathLike] = ()) -> List[str]:
    """What a host's lilv searches: ``extra`` first, then LV2_PATH or else the standard folders."""
    configured = [p for p in os.environ.get("LV2_PATH", "").split(os.pathsep) if p]
    return [str(p) for p in extra] + [os.path.expanduser(p) for p in (configured or STANDARD_LV2_PATH)]


class LilvUnavailable(RuntimeError):
    """liblilv-0.so.0 cannot be loaded (install Debian's liblilv-0-0 or lilv-utils)."""


@dataclass
class LilvPreset:
    """One preset of a plugin as lilv read it: ``values`` maps port symbols to numbers (None when
    lilv could not load the preset), ``properties`` counts its ``state:state`` entries."""

    uri: str
    label: Optional[str]
    values: Optional[Dict[str, float]]
    properties: int = 0
    errors: str = ""


class _UridMap(ctypes.Structure):  # LV2_URID_Map
    _fields_ = [
        ("handle", ctypes.c_void_p),
        ("map", ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_char_p)),
    ]


_SET_PORT_VALUE = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32
)


def _library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("liblilv-0.so.0")
    except OSError as error:
        raise LilvUnavailable(f"liblilv-0.so.0 is not installed ({error}); apt-get install liblilv-0-0") from error
    p = ctypes.c_void_p
    signatures = {
        "lilv_world_new": ([], p),
        "lilv_world_free": ([p], None),
        "lilv_world_load_all": ([p], None),
        "lilv_new_uri": ([p, ctypes.c_char_p], p),
        "lilv_node_free": ([p], None),
        "lilv_node_as_uri": ([p], ctypes.c_char_p),
        "lilv_node_as_string": ([p], ctypes.c_char_p),
        "lilv_world_get_all_plugins": ([p], p),
        "lilv_plugins_get_by_uri": ([p, p], p),
        "lilv_plugin_get_related": ([p, p], p),
        "lilv_nodes_begin": ([p], p),
        "lilv_nodes_is_end": ([p, p], ctypes.c_bool),
        "lilv_nodes_next": ([p, p], p),
        "lilv_nodes_get": ([p, p], p),
        "lilv_nodes_free": ([p], None),
        "lilv_world_load_resource": ([p, p], ctypes.c_int),
        "lilv_world_get": ([p, p, p, p], p),
        "lilv_state_new_from_world": ([p, ctypes.POINTER(_UridMap), p], p),
        "lilv_state_emit_port_values": ([p, _SET_PORT_VALUE, p], None),
        "lilv_state_get_num_properties": ([p], ctypes.c_uint),
        "lilv_state_free": ([p], None),
    }
    for name, (arguments, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = arguments, result
    return lib


class _Stderr:
    """What lilv (and serd under it) print to fd 2 while inside the block."""

    def __enter__(self):
        self.saved = os.dup(2)
        self.file = tempfile.TemporaryFile()
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace").strip()
        self.file.close()


def lilv_presets(plugin_uri: str, lv2_path: Sequence[PathLike]) -> List[LilvPreset]:
    """Every preset of ``plugin_uri`` that lilv finds on ``lv2_path`` (folders holding bundles,
    as ``LV2_PATH`` lists them), as lilv loads each one. Raises ``KeyError`` when lilv finds no
    such plugin there."""
    lib = _library()
    uris: Dict[bytes, int] = {}

    @ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_char_p)
    def map_uri(_handle, uri):
        return uris.setdefault(bytes(uri), len(uris) + 1)

    urid_map = _UridMap(None, map_uri)
    saved_path = os.environ.get("LV2_PATH")
    os.environ["LV2_PATH"] = os.pathsep.join(str(p) for p in lv2_path)
    world = lib.lilv_world_new()
    nodes: List[int] = []

    def node(uri: str) -> int:
        nodes.append(lib.lilv_new_uri(world, uri.encode()))
        return nodes[-1]

    try:
        with _Stderr():
            lib.lilv_world_load_all(world)
        plugin = lib.lilv_plugins_get_by_uri(lib.lilv_world_get_all_plugins(world), node(plugin_uri))
        if not plugin:
            raise KeyError(f"lilv finds no plugin {plugin_uri} on {os.environ['LV2_PATH']}")
        related = lib.lilv_plugin_get_related(plugin, node(_PRESET))
        found = []
        iterator = lib.lilv_nodes_begin(related)
        while not lib.lilv_nodes_is_end(related, iterator):
            found.append(_read_preset(lib, world, lib.lilv_nodes_get(related, iterator), urid_map, map_uri, uris))
            iterator = lib.lilv_nodes_next(related, iterator)
        lib.lilv_nodes_free(related)
        return found
    finally:
        for n in nodes:
            lib.lilv_node_free(n)
        lib.lilv_world_free(world)
        if saved_path is None:
            os.environ.pop("LV2_PATH", None)
        else:
            os.environ["LV2_PATH"] = saved_path


def _read_preset(lib, world, preset, urid_map, map_uri, uris) -> LilvPreset:
    uri = lib.lilv_node_as_uri(preset).decode()
    with _Stderr() as messages:
        loaded = lib.lilv_world_load_resource(world, preset)
        label_key = lib.lilv_new_uri(world, _LABEL.encode())
        label_node = lib.lilv_world_get(world, preset, label_key, None)
        lib.lilv_node_free(label_key)
        state = lib.lilv_state_new_from_world(world, ctypes.byref(urid_map), preset) if loaded >= 0 else None
    label = lib.lilv_node_as_string(label_node).decode() if label_node else None
    if label_node:
        lib.lilv_node_free(label_node)
    if not state:
        return LilvPreset(uri, label, None, errors=messages.text or "lilv loaded no state")
    values: Dict[str, float] = {}
    types = {map_uri(None, t.encode()): t for t in (_FLOAT, _DOUBLE, _INT, _LONG, _BOOL)}
    formats = {_FLOAT: "f", _DOUBLE: "d", _INT: "i", _LONG: "q", _BOOL: "i"}

    @_SET_PORT_VALUE
    def port_value(symbol, _user, value, size, kind):
        code = formats.get(types.get(kind, ""))
        if code is not None and size == struct.calcsize(code):
            values[symbol.decode()] = float(struct.unpack(code, ctypes.string_at(value, size))[0])

    lib.lilv_state_emit_port_values(state, port_value, None)
    properties = lib.lilv_state_get_num_properties(state)
    lib.lilv_state_free(state)
    return LilvPreset(uri, label, values, properties, messages.text)
