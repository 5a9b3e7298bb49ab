"""Chains tried in a child process before this one loads them, remembered by their files' identity.

A third-party plugin that crashes, aborts or hangs when it is loaded or at its preset settings
would end (or hang) the process that loads it. :func:`checked_chain` runs
:func:`fxgrad.host.isolated.probe_chain` first, where such a fault costs a child process and
raises an error naming the plugin. A chain that passed is remembered under the identity of its
plugins' files (path, size and modification time of every file of each bundle or library) and
its settings, so the next run with the same files skips the probe; fxgrad's own effects are
never probed. With isolation "sandbox" the child only loads the chain (what loading it in this
process runs anyway) and the rendering runs in a sandboxed worker (:func:`probe_in_sandbox`):
the chain's plugins then render nowhere outside the sandbox, and a plugin that faults when it
is loaded costs the child, not this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from .. import _native
from ..base.files import atomic_write_bytes
from .isolated import probe_chain
from .plugins import OWN_PREFIX, OWN_URI_PREFIX, Chain

#: Passed probes remembered at most (the oldest are forgotten first).
MAX_RECORDS = 2000


def cache_file() -> Path:
    """Where passed probes are recorded: ``$XDG_CACHE_HOME/fxgrad/probes.json`` (``~/.cache``),
    or ``FXGRAD_PROBE_CACHE``."""
    explicit = os.environ.get("FXGRAD_PROBE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fxgrad" / "probes.json"


def _identifiers(config: Mapping[str, Any]) -> List[str]:
    return [entry["plugin"] if isinstance(entry, Mapping) else entry for entry in config.get("plugins", [])]


def needs_probe(config: Mapping[str, Any]) -> bool:
    """Whether the chain holds a plugin that is not one of fxgrad's own effects."""
    return any(not str(i).startswith((OWN_PREFIX, OWN_URI_PREFIX)) for i in _identifiers(config))


def _files(identifier: str) -> List[List[Any]]:
    """(path, size, mtime) of the files an identifier names: a library, or a bundle's files (an
    LV2 URI names no file: its string stands for itself)."""
    path = Path(identifier)
    if not path.exists():
        path = Path(identifier.split("#", 1)[0])  # PATH#SELECTOR
    if not path.exists():
        return []
    paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]


def identity(config: Mapping[str, Any]) -> str:
    """A key for the chain's settings and the identity of its plugins' files."""
    files = {str(i): _files(str(i)) for i in _identifiers(config)}
    text = json.dumps({"config": config, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _records() -> Dict[str, float]:
    try:
        records = json.loads(cache_file().read_text())
        return records if isinstance(records, dict) else {}
    except (OSError, ValueError):
        return {}


def probe_in_sandbox(chain: Chain, timeout_s: Optional[float] = None) -> None:
    """Renders four blocks of noise through ``chain`` (loaded here, which runs no audio through
    it) at its preset and pinned settings in one sandboxed worker, within ``timeout_s`` (default
    30 s). A fault raises ``PluginCrashedError`` / ``PluginTimeoutError`` / ``PluginOutputError``
    naming the plugin, as :func:`probe_chain` does."""
    rack = _native.Rack(
        chain, 1, 0.01, 1, "lockstep", "two-sided", 0, 1, 0,
        isolation="sandbox", workers=1, timeout_s=timeout_s or 0.0, max_faults=0, max_faults_per_minute=0,
    )  # fmt: skip
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (1, chain.channels, 4 * chain.block_size))
    rack.forward(np.asarray(chain.get_learned(), np.float32)[None], noise.astype(np.float32), False)
    for fault in rack.take_faults():
        k, detail = fault["plugin_index"], fault["detail"]
        where = (
            f"plugin {k} ('{chain.plugins[k].name}', {chain.plugins[k].identifier})"
            if 0 <= k < len(chain.plugins)
            else "the chain"
        )
        doing = f"while processing audio through {where} at its preset and pinned settings (in the sandbox)"
        if fault["kind"] == "timeout":
            raise _native.PluginTimeoutError(f"the chain did not answer{detail[len('no answer') :]} {doing}")
        if fault["kind"] == "nan":
            raise _native.PluginOutputError(f"the chain gave NaN or Inf {doing}")
        how = f"died by {detail}" if fault["kind"] == "crash" else f"ended ({detail})"
        raise _native.PluginCrashedError(f"the chain {how} {doing}")


def checked_chain(
    config: Mapping[str, Any], timeout_s: Optional[float] = None, load: Optional[Callable[[], Chain]] = None
) -> Optional[Chain]:
    """Probe ``config``'s chain in a child process unless fxgrad's own effects make it up or the
    same settings and files passed before; raises what :func:`probe_chain` raises.
    ``load``: with isolation "sandbox", how this process loads the chain; the child then only
    loads it, and the chain ``load`` returns renders in the sandbox (:func:`probe_in_sandbox`)
    and is returned."""
    key = identity(config) if needs_probe(config) else None
    probed = key is not None and key not in _records()
    if probed:
        probe_chain(dict(config), timeout_s, render=load is None)
    chain = load() if load is not None else None
    if not probed or (chain is not None and chain.num_parameters == 0):
        return chain  # (no parameters: nothing a rack could render, and the caller refuses it)
    if chain is not None:
        probe_in_sandbox(chain, timeout_s)
    records = _records()
    records[key] = time.time()
    newest = sorted(records.items(), key=lambda item: item[1])[-MAX_RECORDS:]
    try:
        atomic_write_bytes(cache_file(), json.dumps(dict(newest)).encode())
    except OSError:
        pass  # a read-only cache: the probe runs again next time
    return chain
