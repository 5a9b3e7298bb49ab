"""The evaluation layer: a trained model at work and against its baselines and ceiling.

``fxgrad evaluate`` (:mod:`.evaluate`: model, smoothed model, static setting and defaults on
held-out clips), ``fxgrad oracle`` (:mod:`.oracle`, :mod:`.oracle_report`: the chain's own best
per clip) and ``fxgrad apply`` (:mod:`.apply`: a file rendered with a model's automation).

Layers, lowest first (each imports only from the layers before it): base, host, torch, nn, io,
config, data, train, match, **evaluation**, cli.
"""
