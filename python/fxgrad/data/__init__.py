"""The data layer: the audio a run trains and is scored on.

Audio files in and out (:mod:`.audio`), paired clips and the stateful frame stream that feeds
the lanes (:mod:`.stream`), synthetic pairs with a hidden automation (:mod:`.synth`), a training
folder from a user's own files (:mod:`.pairs`, ``fxgrad data pairs``) and the three DeepAFx
tasks' data sets (:mod:`.tasks`, ``fxgrad data build``).

Layers, lowest first (each imports only from the layers before it): base, host, torch, nn, io,
config, **data**, train, match, evaluation, cli. This layer uses config, io, nn, host and base.
"""
