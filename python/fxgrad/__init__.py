"""fxgrad: train neural networks end to end through real audio plugins.

The host (this module) loads LV2, VST3 and LADSPA plugins headless and runs them on numpy audio
shaped (channels, samples). The PyTorch layer lives in :mod:`fxgrad.torch`, training in
:mod:`fxgrad.train`.
"""
import atexit as _atexit

from . import _native
from ._native import ParameterInfo, Plugin, PluginInfo, PluginLoadError, PluginOutputError
from .host import Chain, load, own_plugin_path, own_plugins, scan

__all__ = [
    "Chain",
    "ParameterInfo",
    "Plugin",
    "PluginInfo",
    "PluginLoadError",
    "PluginOutputError",
    "load",
    "own_plugin_path",
    "own_plugins",
    "scan",
]
__version__ = "0.1.0"

# Plugin instances must go before JUCE does, whatever order the interpreter frees objects in.
_atexit.register(_native.shutdown)
