"""The base layer: what every other layer shares, with no plugin and no model in it.

Atomic file writes and the run-folder lock (:mod:`.files`), folders of audio and their pairing
(:mod:`.folders`), reading a JSON/YAML/TOML config file (:mod:`.configfile`), argument and
machine checks (:mod:`.checks`), the torch device a command asked for (:mod:`.device`) and
plain-text tables (:mod:`.text`).

Layers, lowest first (each imports only from the layers before it): **base**, host, torch, nn,
io, config, data, train, match, evaluation, cli. This layer imports nothing of fxgrad.
"""
