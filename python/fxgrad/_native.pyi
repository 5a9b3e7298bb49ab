"""Type stubs for fxgrad's native host (JUCE). Use the fxgrad package's functions to load."""

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

# The names Rack takes for its options, in the order the native table lists them.
STRATEGIES: Tuple[str, ...]  # ("lockstep", "replay", "snapshot")
ESTIMATORS: Tuple[str, ...]  # ("two-sided", "one-sided", "fd")
ISOLATIONS: Tuple[str, ...]  # ("none", "process", "sandbox")
DIRECTIONS: Tuple[str, ...]  # ("rademacher", "orthogonal", "guided")
DEFAULT_TIMEOUT_S: float  # an isolated worker's deadline per call when none is given (30 s)

class PluginError(RuntimeError):
    """Base of the errors that a plugin's own behaviour causes."""

class PluginLoadError(PluginError):
    """A file or URI is not a plugin fxgrad can load, or the plugin failed to instantiate."""

class PluginOutputError(PluginError):
    """A plugin produced NaN or Inf output (or kept doing so past a rack's fault budget), or no state."""

class PluginCrashedError(PluginError):
    """An isolated plugin's process died (signal, abort, exit), at load or past the fault budget."""

class PluginTimeoutError(PluginError):
    """An isolated plugin missed its deadline (a hang)."""

class PluginInfo:
    """What a scan or a load reports about a plugin."""

    format: str  # "LV2", "VST3", "VST2" or "LADSPA"
    name: str
    vendor: str
    # what fxgrad.load takes: LV2 URI, path of a VST3 bundle / VST2 or LADSPA library (an LV2
    # bundle outside the LV2 path), PATH#SELECTOR where a file holds several, fxgrad:NAME
    identifier: str
    unique_id: str
    num_inputs: int  # audio inputs over all buses (sidechains included)
    num_outputs: int
    unsupported: str  # why fxgrad cannot host it (no audio output or input); "" when it can

class ParameterInfo:
    """A parameter in plain units, with fxgrad's normalised [0, 1] mapping."""

    index: int
    id: str  # LV2 port symbol; for VST3/LADSPA the snake_case of the name
    name: str
    unit: str
    minimum: float
    maximum: float
    default: float
    normalized_default: float
    logarithmic: bool  # normalised values follow a log scale
    steps: int  # 0 for continuous parameters
    is_toggle: bool
    is_integer: bool
    automatable: bool
    is_bypass: bool
    is_trigger: bool  # a momentary button (LV2 pprops:trigger)
    choices: List[Tuple[float, str]]

class Plugin:
    """One hosted plugin instance. Audio is float32 shaped (channels, samples). Every call
    raises RuntimeError in a process forked after the plugin was made (use 'spawn')."""

    @staticmethod
    def load(identifier: str, sample_rate: float, block_size: int, channels: int, hint: str = "") -> Plugin: ...
    info: PluginInfo
    name: str
    vendor: str
    format: str
    identifier: str
    sample_rate: float
    block_size: int
    channels: int
    parameters: List[ParameterInfo]
    latency_samples: int
    has_dsp_snapshot: bool
    state: bytes  # a header naming the plugin, its data's size and checksum, the data (every value set so far)
    plugin_data: bytes  # the plugin's own state data, without fxgrad's header (what presets carry)
    def parameter_index(self, name: str) -> int: ...
    def set(self, name: Union[str, int], value: float, normalized: bool = False) -> None:
        """Set a parameter in plain units (or normalised [0, 1]); raises KeyError for an unknown
        name (listing close matches) and ValueError for an out-of-range value."""
    def get(self, name: Union[str, int], normalized: bool = False) -> float: ...
    def process(self, audio: FloatArray) -> FloatArray:
        """Process (channels, samples) float32 audio; stateful across calls; releases the GIL."""
    def reset(self) -> None:
        """Clear DSP state: the instance behaves as a fresh one with the current parameters (a new
        instance, for LADSPA and for VST2/VST3 plugins that keep DSP state through deactivation)."""
    def load_plugin_data(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Apply a preset's state data (as ``plugin_data`` gives) to this plugin."""
    vst3_preset: bytes  # VST3: the current state as a .vstpreset, by Steinberg's PresetFile::savePreset
    vst2_program: bytes  # VST2: the current program as JUCE writes an .fxp ('FPCh' chunk or 'FxCk' values)
    def load_vst3_preset(self, file: Union[bytes, bytearray, memoryview]) -> None:
        """Apply a .vstpreset file's bytes as JUCE's VST3 host does (Steinberg's PresetFile::loadPreset);
        ValueError if that reader refuses them (another plugin's preset, a damaged file)."""
    def lv2_preset(self, file_uri: str, label: str) -> bytes:
        """LV2: the current state as the Turtle of a preset file to be written at ``file_uri``
        (the preset is the file itself, ``<>``), as lilv serialises states."""
    def load_lv2_preset(self, path: str) -> None:
        """LV2: apply a preset file (.ttl) as lilv reads it; ValueError for another plugin's preset."""
    def load_state(self, state: Union[bytes, bytearray, memoryview]) -> None:
        """Restore a ``state`` of this plugin (any instance, any options); ValueError, leaving the
        plugin as it was, for anything else (arbitrary bytes, another plugin's state, a truncated
        or corrupted one)."""
    def clone(self) -> Plugin:
        """A new instance with the same options, parameters and preset state (fresh DSP state)."""

class Chain:
    """Plugins in series with one vector of learned, normalised parameters."""

    def __init__(
        self, plugins: Sequence[Plugin], learned: Optional[Sequence[str]], pinned: Sequence[Tuple[str, float]]
    ) -> None: ...
    plugins: List[Plugin]
    num_parameters: int
    learned: List[str]
    pinned: List[Tuple[str, float]]
    channels: int
    sample_rate: float
    block_size: int
    latency_samples: int
    has_dsp_snapshot: bool
    def resolve(self, name: str) -> str: ...
    def set_learned(self, values: FloatArray) -> None: ...
    def get_learned(self) -> FloatArray: ...
    def process(self, audio: FloatArray) -> FloatArray: ...
    def reset(self) -> None: ...
    def clone(self) -> Chain: ...

class Rack:
    """M lanes of a chain with SPSA (or FD) gradients, evaluated on native threads."""

    def __init__(
        self,
        chain: Chain,
        lanes: int,
        eps: float,
        perturbations: int,
        strategy: str,
        estimator: str,
        replay_samples: int,
        threads: int,
        seed: int,
        isolation: str = "none",
        workers: int = 0,
        timeout_s: float = 0.0,
        worker_log: str = "",
        max_faults: int = 1000,
        max_faults_per_minute: int = 30,
        directions: str = "rademacher",
        shared: bool = False,
        baseline: float = 0.0,
        subspace: int = 0,
        guided_share: float = 0.5,
    ) -> None:
        """isolation "process" runs the lanes in fxgrad-worker processes (cpp/fxgrad/IsolatedLanes.h);
        directions, shared, baseline, subspace and guided_share shape the SPSA estimate (Rack.h)."""
    lanes: int
    num_parameters: int
    channels: int
    block_size: int
    threads: int
    evaluators_per_lane: int
    step: int
    def forward(self, theta: FloatArray, x: FloatArray, record: bool = True) -> FloatArray:
        """theta (M, P) in [0, 1], x (M, C, N) -> y (M, C, N); N a multiple of the block size."""
    def vjp(self, grad_y: FloatArray) -> FloatArray:
        """grad_y (M, C, N) of the last recorded frame -> grad_theta (M, P)."""
    def perturbation(self, lane: int, k: int = 0) -> List[float]: ...
    def reset_lanes(self, mask: npt.NDArray[np.bool_], preroll: Optional[FloatArray] = None) -> None: ...
    def stats(self) -> Dict[str, float]:
        """dsp_seconds, wall_seconds, evaluations, faults, restarts, recovery_seconds, busy_seconds and
        phase_seconds, handoff_seconds (in-process lanes: threads' time in tasks, wall time of the
        parallel phases, and of that the time before the first task starts and after the last ends)."""
    def reset_stats(self) -> None: ...
    faulted: npt.NDArray[np.bool_]  # (M,): lanes that faulted since the last forward
    worker_pids: List[int]  # isolation "process": the workers' process ids
    timeout_s: float  # isolation "process": the workers' deadline per call, in seconds (0 in process)
    def interrupt(self) -> None:
        """Abandon a wait on the workers still running 0.3 s from now, and every later call
        (KeyboardInterrupt): what a signal handler that asks for a stop calls."""
    def take_faults(self) -> List[Dict]:
        """Fault reports since the last call (kind: crash, exit, timeout, nan or interrupted;
        detail, step, lanes, lane, phase, evaluation, plugin, plugin_index, normalized, plain)."""

class BatchRenderer:
    """K renders of a chain in parallel on native threads, each from a fresh DSP state, on
    copies of the chain kept across calls (use :func:`fxgrad.render_batch`)."""

    def __init__(self, chain: Chain, threads: int = 0) -> None: ...
    threads: int
    instances: int  # copies of the chain made so far (at most threads)
    def render(self, theta: FloatArray, audio: FloatArray) -> FloatArray:
        """theta (K, P) or (P,) in [0, 1]; audio (C, N) or (K, C, N) float32 -> (K, C, N).
        Render k equals a fresh clone of the chain after set_learned(theta[k]), bit for bit."""
    def stats(self) -> Dict[str, float]: ...
    def reset_stats(self) -> None: ...

class SpectralDistance:
    """The aligned match loss of K outputs against one reference on native threads (FFTW), each
    output computed whole by one thread: the same losses whatever the thread count (use
    :class:`fxgrad.match.loss.MatchLoss`, which defines the resolutions and weighting)."""

    def __init__(
        self,
        reference: FloatArray,
        resolutions: Sequence[Tuple[int, int, FloatArray]],
        weighting: FloatArray,
        floor: float,
        threads: int = 1,
    ) -> None:
        """reference (C, N) float32; resolutions: (fft_size, hop, window (fft_size,)) each;
        weighting: (fft_size / 2 + 1,) of the first resolution: what a bin's squared magnitude
        adds to its frame's K-weighted mean square; floor: the magnitudes' lower bound."""
    channels: int
    samples: int
    threads: int
    reference_loudness: float  # LUFS
    def evaluate(self, outputs: FloatArray) -> npt.NDArray[np.float64]:
        """outputs (K, C, N) float32 -> (K,) float64 losses (ValueError for NaN or Inf)."""

def scan(paths: Sequence[str]) -> List[PluginInfo]: ...
def set_output_capture(enabled: bool) -> None:
    """Capture what plugins print to stdout/stderr while they are scanned, created or freed."""

def take_plugin_output() -> List[str]:
    """The lines plugins printed while captured, since the last call, oldest first."""

def shutdown() -> None: ...
