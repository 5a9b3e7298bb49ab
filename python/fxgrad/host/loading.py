"""``fxgrad.load``: a plugin in this process (:mod:`.plugins`) or, with ``isolated=True``, in a
child process (:mod:`.isolated`)."""

from __future__ import annotations

from typing import Optional

from .. import _native
from ..base.files import PathLike
from .isolated import IsolatedPlugin
from .plugins import checked_arguments, load_in_process


def load(
    identifier: PathLike,
    sample_rate: float = 44100,
    block_size: int = 1024,
    channels: int = 2,
    plugin: str = "",
    isolated: bool = False,
    timeout_s: Optional[float] = None,
) -> _native.Plugin:
    """Load a plugin, ready to process audio shaped ``(channels, samples)``.

    Args:
        identifier: an LV2 URI, an LV2 bundle folder (from any location; a copy of an installed
            bundle, declaring the same URI, stands for the installed plugin), a VST3 bundle, a VST2
            or LADSPA library, ``PATH#SELECTOR`` for one plugin of a file holding several (as
            :func:`scan` lists them: a LADSPA label or unique ID, a VST2 shell's sub-plugin ID, an
            LV2 URI), or ``"fxgrad:NAME"`` / ``"fxgrad:NAME/vst3"`` for one of fxgrad's own effects.
        sample_rate: Hz.
        block_size: the largest block the plugin is given; longer audio is split into blocks of
            this size, so stateful results do not depend on how the caller splits its audio as
            long as every call but the last is a multiple of it (some plugins, LSP's among them,
            give different results for other splits).
        channels: channels of the audio passed to ``process``. A mono plugin in a stereo stream
            gets the average of the channels and its output goes to both; a stereo plugin in a
            mono stream gets the signal on both inputs and its outputs are averaged; a sidechain
            input receives the main input.
        plugin: picks one plugin where a bundle or library holds several, as the SELECTOR of
            ``PATH#SELECTOR`` does (a URI, label, unique ID or name).
        isolated: load it in a child process (:class:`fxgrad.host.isolated.IsolatedPlugin`, same
            API): a crash or hang raises ``PluginCrashedError`` / ``PluginTimeoutError`` instead
            of ending this process, and ``reload()`` brings up a fresh instance.
        timeout_s: with ``isolated``, the deadline of each call (default 30 s).

    Raises:
        FileNotFoundError: the path does not exist.
        PluginLoadError: not a plugin, not a regular file or bundle, a plugin without an audio
            input or output, or it failed to instantiate (the message says why).
        TypeError: a fractional or non-numeric block size or channel count.
        ValueError: a sample rate, block size or channel count out of range, or a NUL character
            in the identifier.
    """
    if isolated:
        source, sample_rate, block_size, channels = checked_arguments(
            identifier, sample_rate, block_size, channels, plugin
        )
        return IsolatedPlugin(source, sample_rate, block_size, channels, plugin, timeout_s)
    return load_in_process(identifier, sample_rate, block_size, channels, plugin)
