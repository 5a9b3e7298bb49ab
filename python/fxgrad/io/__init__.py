"""The io layer: files that fxgrad writes for other programs, and reads back.

DAW presets (:mod:`.presets`: VST3 ``.vstpreset``, VST2 ``.fxp``, LV2 preset bundles; :mod:`.lilv`
reads LV2 presets as hosts do; :mod:`.check_presets` is ``fxgrad check``'s state and preset
probe), the learned parameters as tables (:mod:`.params`: plain values, units, the per-frame
parameter CSV), the PNG plots (:mod:`.plot`), and Ardour 7 sessions (:mod:`.session`,
:mod:`.session_spec`; written and rendered headless by Ardour's own tools, :mod:`.ardour`).

Layers, lowest first (each imports only from the layers before it): base, host, torch, nn,
**io**, config, data, train, match, evaluation, cli. This layer uses host and base.
"""
