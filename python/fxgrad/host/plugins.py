"""Loading, scanning and chaining plugins: the Python face of ``fxgrad._native``."""

from __future__ import annotations

import atexit
import copyreg
import logging
import numbers
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from .. import _native
from ..base.checks import integer
from ..base.configfile import load_config
from ..base.files import PathLike

#: What plugins print while fxgrad scans, creates or frees them (lilv's reports on bundles, a DPF
#: plugin's "asked to delete component while audio processor still active"): the native host
#: captures it and it is logged here, at INFO, never printed unasked. ``fxgrad -v`` shows it;
#: ``FXGRAD_PLUGIN_OUTPUT=show`` leaves it on stdout/stderr (``fxgrad check``'s workers, whose
#: output goes to their log).
PLUGIN_OUTPUT = logging.getLogger("fxgrad.plugins")
_native.set_output_capture(os.environ.get("FXGRAD_PLUGIN_OUTPUT") != "show")


def log_plugin_output() -> None:
    """Send what plugins printed while captured to :data:`PLUGIN_OUTPUT`."""
    for line in _native.take_plugin_output():
        PLUGIN_OUTPUT.info(line)


@atexit.register
def _shutdown() -> None:
    """Plugin instances must go before JUCE does, whatever order the interpreter frees objects in."""
    _native.shutdown()
    log_plugin_output()


#: Prefix that names one of fxgrad's own effects in place of a path or URI, e.g. ``fxgrad:Gain``.
OWN_PREFIX = "fxgrad:"
#: The LV2 URIs of fxgrad's own effects: ``OWN_URI_PREFIX + "Gain"``.
OWN_URI_PREFIX = "https://fxgrad.org/plugins/"
OWN_EFFECTS = ("Gain", "Compressor", "MultibandCompressor", "ParametricEQ", "Limiter", "TubeStage")


def _own_plugin_folders() -> List[Path]:
    package = Path(__file__).resolve().parents[1]
    folders = [package / "_plugins"]
    extra = os.environ.get("FXGRAD_PLUGIN_DIR")
    if extra:
        folders.insert(0, Path(extra))
    return folders


def own_plugin_path(effect: str, format: str = "lv2") -> Path:
    """Path of one of fxgrad's own effects (``Gain``, ``Compressor``, ...) as a ``"vst3"`` or
    ``"lv2"`` bundle, as built by ``make`` or shipped in the wheel.

    Raises ``FileNotFoundError`` naming where it looked when the bundle is missing.
    """
    fmt = format.lower()
    if fmt not in ("vst3", "lv2"):
        raise ValueError(f"format must be 'vst3' or 'lv2', got {format!r}")
    if effect not in OWN_EFFECTS:
        raise ValueError(f"fxgrad has no effect {effect!r}; its effects are: {', '.join(OWN_EFFECTS)}")
    folders = _own_plugin_folders()
    for folder in folders:
        candidate = folder / f"Fxgrad{effect}.{fmt}"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"fxgrad's own {effect} ({fmt}) is not built; looked in {', '.join(map(str, folders))}. "
        "Run `make build` (or set FXGRAD_PLUGIN_DIR)."
    )


def own_plugins(format: str = "lv2") -> Dict[str, Path]:
    """Every built effect of fxgrad's own, by name."""
    found = {}
    for effect in OWN_EFFECTS:
        try:
            found[effect] = own_plugin_path(effect, format)
        except FileNotFoundError:
            pass
    return found


def _resolve_source(identifier: PathLike) -> str:
    text = os.fspath(identifier)
    if text.startswith(OWN_PREFIX):
        name, _, fmt = text[len(OWN_PREFIX) :].partition("/")
        return str(own_plugin_path(name, fmt or "lv2"))
    # The own effects' bundles lie outside the LV2 search path unless installed: their URIs name
    # the built bundles.
    if text.startswith(OWN_URI_PREFIX) and text[len(OWN_URI_PREFIX) :] in OWN_EFFECTS:
        return str(own_plugin_path(text[len(OWN_URI_PREFIX) :], "lv2"))
    # A relative path made absolute: isolated workers may run elsewhere (the sandbox's run in /).
    path, hash_sign, selector = text.partition("#")
    if os.path.exists(text):
        return os.path.abspath(text)
    if hash_sign and os.path.exists(path):
        return os.path.abspath(path) + hash_sign + selector
    return text


def _own_identifier(path: str) -> Optional[str]:
    """``fxgrad:NAME`` (``fxgrad:NAME/vst3``) for the bundle of one of fxgrad's own effects."""
    bundle = Path(path)
    for effect in OWN_EFFECTS:
        for fmt in ("lv2", "vst3"):
            if bundle.name == f"Fxgrad{effect}.{fmt}" and any(bundle.parent == f for f in _own_plugin_folders()):
                return OWN_PREFIX + effect + ("" if fmt == "lv2" else "/vst3")
    return None


def load_in_process(
    identifier: PathLike,
    sample_rate: float = 44100,
    block_size: int = 1024,
    channels: int = 2,
    plugin: str = "",
) -> _native.Plugin:
    """:func:`fxgrad.load` in this process (its arguments and errors; see
    :func:`fxgrad.host.loading.load`)."""
    source, sample_rate, block_size, channels = checked_arguments(identifier, sample_rate, block_size, channels, plugin)
    try:
        loaded = _native.Plugin.load(source, float(sample_rate), block_size, channels, plugin)
    finally:
        log_plugin_output()
    loaded._source = os.fspath(identifier)
    loaded._hint = plugin
    return loaded


def checked_arguments(identifier: PathLike, sample_rate: float, block_size: int, channels: int, plugin: str):
    """``(source, sample_rate, block_size, channels)`` of a load, checked: the types, and the
    identifier resolved (fxgrad's own effects, existing paths)."""
    if not isinstance(identifier, (str, os.PathLike)):
        raise TypeError(f"identifier must be a URI or path (str or os.PathLike), got {type(identifier).__name__}")
    if not isinstance(plugin, str):
        raise TypeError(f"plugin must be a str (a URI or name), got {type(plugin).__name__}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real):
        raise TypeError(f"sample_rate must be a number (Hz), got {sample_rate!r}")
    block_size, channels = integer(block_size, "block_size"), integer(channels, "channels")
    return _resolve_source(identifier), sample_rate, block_size, channels


def _rebuild(
    source: str, sample_rate: float, block_size: int, channels: int, plugin: str, state: bytes
) -> _native.Plugin:
    loaded = load_in_process(source, sample_rate, block_size, channels, plugin)
    loaded.load_state(state)
    return loaded


def _reduce(plugin: _native.Plugin):
    """A pickled plugin is loaded afresh where it is unpickled (a 'spawn' worker process, say)
    from the identifier it was loaded by, with its state: parameters, and the DSP state for
    fxgrad's own plugins."""
    return _rebuild, (
        getattr(plugin, "_source", plugin.identifier),
        plugin.sample_rate,
        plugin.block_size,
        plugin.channels,
        getattr(plugin, "_hint", ""),
        plugin.state,
    )


copyreg.pickle(_native.Plugin, _reduce)


def scan(
    paths: Optional[Iterable[PathLike]] = None, include_own: bool = True, include_unsupported: bool = False
) -> List[_native.PluginInfo]:
    """Installed plugins: LV2 (standard folders and ``LV2_PATH``), VST3 (standard folders and
    ``VST3_PATH``), VST2 (``~/.vst``, ``~/.lxvst``, ``/usr/lib/vst``, ``/usr/lib/lxvst``, the same
    under ``/usr/local``, ``VST_PATH`` and ``LXVST_PATH``), LADSPA (``LADSPA_PATH``), fxgrad's own
    effects (as ``fxgrad:NAME``), and the given ``paths`` (folders searched recursively, or plugin
    bundles/files). Each ``identifier`` loads with :func:`load` as it is.

    Plugins fxgrad cannot host (no audio output or no audio input: MIDI or control plugins,
    instruments, generators) are left out unless ``include_unsupported``; their ``unsupported``
    says why."""
    extra = [os.fspath(p) for p in (paths or [])]
    if include_own:
        extra += [str(f) for f in _own_plugin_folders() if f.is_dir()]
    seen, result = set(), []
    try:
        found = _native.scan(extra)
    finally:
        log_plugin_output()
    for info in found:
        key = (info.format, info.unique_id)
        if key in seen or (info.unsupported and not include_unsupported):
            continue
        seen.add(key)
        info.identifier = _own_identifier(info.identifier) or info.identifier
        result.append(info)
    return sorted(result, key=lambda i: (i.format, i.name.lower()))


class Chain(_native.Chain):
    """Plugins in series, driven by one vector of learned parameters in normalised [0, 1] units.

    A parameter is named ``"INDEX.ID"`` (``"0.threshold0"``), or by its id or name alone where
    that is unique in the chain.

    Args:
        plugins: loaded plugins sharing sample rate, block size and channels.
        learned: the parameters the network drives, in order; ``None`` selects every automatable
            parameter that is not pinned, a bypass switch, a toggle (on/off) or a trigger (a
            momentary button, e.g. "Reset Peak Hold"): switches give SPSA no gradient. Meters are
            outputs, never parameters.
        pinned: fixed plain values, e.g. ``{"0.bypass0": 0}`` for the Calf Multiband Compressor
            whose bands ship bypassed.
    """

    def __init__(
        self,
        plugins: Sequence[_native.Plugin],
        learned: Optional[Sequence[str]] = None,
        pinned: Optional[Mapping[str, float]] = None,
    ):
        plugins = list(plugins)
        for k, p in enumerate(plugins):
            if not isinstance(p, _native.Plugin):
                raise TypeError(f"chain entry {k} is a {type(p).__name__}, not a Plugin (use fxgrad.load)")
        super().__init__(
            plugins, None if learned is None else list(learned), [(str(k), float(v)) for k, v in (pinned or {}).items()]
        )
        # The Python objects carry how each plugin was loaded (for to_config); keep them alive.
        self._loaded = plugins

    def __repr__(self) -> str:
        names = " -> ".join(p.name for p in self.plugins)
        return f"<Chain {names}: {self.num_parameters} learned, {len(self.pinned)} pinned>"

    def to_config(self) -> Dict[str, Any]:
        """A plain dict (JSON/YAML-able) from which :meth:`from_config` rebuilds this chain."""
        first = self.plugins[0]
        return {
            "sample_rate": first.sample_rate,
            "block_size": first.block_size,
            "channels": first.channels,
            "plugins": [
                {
                    "plugin": getattr(p, "_source", p.identifier),
                    **({"select": p._hint} if getattr(p, "_hint", "") else {}),
                }
                for p in self._loaded
            ],
            "learned": list(self.learned),
            "pinned": {name: value for name, value in self.pinned},
        }

    @classmethod
    def from_config(cls, config: Union[Mapping[str, Any], PathLike]) -> "Chain":
        """Build a chain from a dict or a JSON/YAML file with keys ``plugins`` (a list of
        identifiers, or of ``{"plugin": ID, "select": NAME}``), optional ``learned`` (list of
        names), ``pinned`` (name -> plain value), ``sample_rate``, ``block_size``, ``channels``."""
        if not isinstance(config, Mapping):
            config = load_config(config)
        unknown = set(config) - {"plugins", "learned", "pinned", "sample_rate", "block_size", "channels"}
        if unknown:
            raise ValueError(f"unknown chain config keys: {', '.join(sorted(unknown))}")
        entries = config.get("plugins")
        if not entries:
            raise ValueError("a chain config needs a non-empty 'plugins' list")
        options = dict(
            sample_rate=config.get("sample_rate", 44100),
            block_size=config.get("block_size", 1024),
            channels=config.get("channels", 2),
        )
        plugins = []
        for entry in entries:
            if isinstance(entry, Mapping):
                plugins.append(load_in_process(entry["plugin"], plugin=entry.get("select", ""), **options))
            else:
                plugins.append(load_in_process(entry, **options))
        return cls(plugins, config.get("learned"), config.get("pinned"))
