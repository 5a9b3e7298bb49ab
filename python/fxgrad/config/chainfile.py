"""The ``--chain CHAIN.yaml`` of ``fxgrad render``, ``match`` and ``data pairs``: a chain
config (what :meth:`fxgrad.Chain.from_config` takes) or a whole training config, whose
``chain`` section, sample rate and channels are used."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from ..base.files import PathLike
from ..host.plugins import Chain, load_config


def chain_config(path: PathLike) -> Dict[str, Any]:
    """The chain config dict in ``path`` (JSON, YAML or TOML)."""
    path = Path(path)
    raw = load_config(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a chain file holds a mapping (plugins, learned, pinned, ...)")
    if "chain" in raw:  # a training config
        from . import Config

        return Config.load(path).chain_config()
    if "plugins" not in raw:
        raise ValueError(f"{path}: a chain file needs 'plugins' (or a training config's 'chain' section)")
    return raw


def load_chain(path: PathLike, learned: Optional[Sequence[str]] = None) -> Tuple[Chain, Dict[str, Any]]:
    """``(chain, config)`` from a chain file; ``learned`` replaces the file's learned list."""
    config = dict(chain_config(path))
    if learned is not None:
        config["learned"] = list(learned)
    try:
        return Chain.from_config(config), config
    except KeyError as error:  # an unknown parameter name: the message lists close matches
        raise ValueError(f"{path}: {error.args[0] if error.args else error}") from None


def set_plain(chain: Chain, assignments: Sequence[str]) -> Dict[str, float]:
    """Apply ``NAME=VALUE`` assignments (plain units; NAME as ``INDEX.ID`` or a unique id) to
    the chain's plugins; returns ``{qualified name: value}``."""
    applied = {}
    for item in assignments:
        name, equals, text = item.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"--set {item!r}: write NAME=VALUE, e.g. --set 0.threshold_db=-20")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--set {item!r}: {text!r} is not a number (plain units)") from None
        try:
            qualified = chain.resolve(name.strip())
        except KeyError as error:
            raise ValueError(error.args[0] if error.args else str(error)) from None
        index, _, parameter = qualified.partition(".")
        chain.plugins[int(index)].set(parameter, value)
        applied[qualified] = value
    return applied
