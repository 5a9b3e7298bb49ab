"""The nn layer: what learns and what measures, on tensors and arrays, with no plugin in it.

The parameter encoder (:mod:`.encoder`: log-mel front end, once per window or per clip; the CNN
backbones of :mod:`.backbones`; sigmoid head), the
training losses (:mod:`.losses`), the evaluation metrics (:mod:`.metrics`: MFCC distance,
multi-resolution STFT error, loudness) and the smoothing of predicted parameter trajectories
(:mod:`.smoothing`).

Layers, lowest first (each imports only from the layers before it): base, host, torch, **nn**,
io, config, data, train, match, evaluation, cli. This layer uses base only.
"""
