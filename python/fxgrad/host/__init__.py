"""The host layer: plugins loaded, scanned, chained, isolated, batch-rendered and checked.

:mod:`.plugins` is the Python face of ``fxgrad._native`` (:func:`fxgrad.load`,
:func:`fxgrad.scan`, :class:`fxgrad.Chain`, fxgrad's own effects); :mod:`.isolated` runs a
plugin or chain in a child process; :mod:`.batch` renders many settings at once on native
threads (:func:`fxgrad.render_batch`); :mod:`.render` renders a whole clip frame by frame with
automation; :mod:`.check`, :mod:`.check_pool` and :mod:`.check_worker` are ``fxgrad check``'s
probe, its pool of worker processes and their task loop.

Layers, lowest first (each imports only from the layers before it): base, **host**, torch, nn,
io, config, data, train, match, evaluation, cli. This layer uses ``fxgrad._native`` and base;
NumPy in and out, never PyTorch.
"""
