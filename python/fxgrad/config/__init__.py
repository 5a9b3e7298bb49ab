"""The config layer: what a run is told, checked before anything runs.

The training configuration (:mod:`.schema`: :class:`Config`, its typed sections, ``--set``
overrides) and the ``--chain CHAIN.yaml`` files of ``render``, ``match`` and ``data pairs``
(:mod:`.chainfile`); the configs shipped inside the package, found by name (:mod:`.shipped`).

Layers, lowest first (each imports only from the layers before it): base, host, torch, nn, io,
**config**, data, train, match, evaluation, cli. This layer uses nn (the encoder's option
check), host and base.
"""

from .schema import Config, ConfigError, apply_overrides

__all__ = ["Config", "ConfigError", "apply_overrides"]
