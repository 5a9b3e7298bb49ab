"""The match layer: a chain's settings found without a model, by search.

``fxgrad match`` (:mod:`.search`: a reference matched by an input's settings), its loss
(:mod:`.loss`), the optimisers over a population of settings (:mod:`.optimise`: CMA-ES, SPSA)
and how well a loss determines each parameter (:mod:`.identifiability`).

Layers, lowest first (each imports only from the layers before it): base, host, torch, nn, io,
config, data, train, **match**, evaluation, cli.
"""
