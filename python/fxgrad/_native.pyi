"""Type stubs for fxgrad's native host (JUCE). Use the fxgrad package's functions to load."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

class PluginLoadError(RuntimeError):
    """A file or URI is not a plugin fxgrad can load, or the plugin failed to instantiate."""

class PluginOutputError(RuntimeError):
    """A plugin produced NaN or Inf output."""

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
    unsupported: str  # why fxgrad cannot host it (no audio output); "" when it can

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
    choices: List[Tuple[float, str]]

class Plugin:
    """One hosted plugin instance. Audio is float32 shaped (channels, samples)."""

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
    state: bytes
    def parameter_index(self, name: str) -> int: ...
    def set(self, name: Union[str, int], value: float, normalized: bool = False) -> None:
        """Set a parameter in plain units (or normalised [0, 1]); raises KeyError for an unknown
        name (listing close matches) and ValueError for an out-of-range value."""
    def get(self, name: Union[str, int], normalized: bool = False) -> float: ...
    def process(self, audio: FloatArray) -> FloatArray:
        """Process (channels, samples) float32 audio; stateful across calls; releases the GIL."""
    def reset(self) -> None:
        """Clear DSP state: the instance behaves as a fresh one with the current parameters."""
    def load_state(self, state: bytes) -> None: ...
    def clone(self) -> Plugin:
        """A new instance with the same options, parameters and preset state (fresh DSP state)."""

class Chain:
    """Plugins in series with one vector of learned, normalised parameters."""

    def __init__(self, plugins: Sequence[Plugin], learned: Optional[Sequence[str]],
                 pinned: Sequence[Tuple[str, float]]) -> None: ...
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

    def __init__(self, chain: Chain, lanes: int, eps: float, perturbations: int, strategy: str,
                 estimator: str, replay_samples: int, threads: int, seed: int) -> None: ...
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
    def stats(self) -> Dict[str, float]: ...
    def reset_stats(self) -> None: ...

def scan(paths: Sequence[str]) -> List[PluginInfo]: ...
def shutdown() -> None: ...
