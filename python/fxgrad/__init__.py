"""fxgrad: train neural networks end to end through real audio plugins.

The host (:func:`load`, :func:`scan`, :class:`Chain`) loads LV2, VST3, VST2 and LADSPA plugins
headless and runs them on numpy audio shaped (channels, samples). The PyTorch layer lives in
:mod:`fxgrad.torch`; losses, encoder and data streaming in :mod:`fxgrad.nn.losses`,
:mod:`fxgrad.nn.encoder` and :mod:`fxgrad.data.stream`, which work without the native extension.
"""

import importlib

__version__ = "0.1.0"

# The host names load the native extension on first use, so the pure-PyTorch modules import
# (and their tests run) without it.
_HOST_NAMES = {
    "Chain": "fxgrad.host.plugins",
    "load": "fxgrad.host.loading",
    "own_plugin_path": "fxgrad.host.plugins",
    "own_plugins": "fxgrad.host.plugins",
    "scan": "fxgrad.host.plugins",
    "load_config": "fxgrad.host.plugins",
    "IsolatedPlugin": "fxgrad.host.isolated",
    "IsolatedChain": "fxgrad.host.isolated",
    "render_batch": "fxgrad.host.batch",
    "ParameterInfo": "fxgrad._native",
    "Plugin": "fxgrad._native",
    "PluginInfo": "fxgrad._native",
    "PluginError": "fxgrad._native",
    "PluginLoadError": "fxgrad._native",
    "PluginOutputError": "fxgrad._native",
    "PluginCrashedError": "fxgrad._native",
    "PluginTimeoutError": "fxgrad._native",
}

__all__ = sorted(_HOST_NAMES)


def __getattr__(name):
    module = _HOST_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'fxgrad' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(list(globals()) + list(_HOST_NAMES))
