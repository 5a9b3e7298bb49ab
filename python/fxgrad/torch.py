"""The PyTorch layer: real plugins inside an autograd graph, with SPSA gradients.

``PluginLayer`` renders a batch of frames through M lanes of a plugin chain (one lane per batch
item, frames of a lane consecutive in time) and, on backward, estimates the vector-Jacobian
product with respect to the normalised parameters by simultaneous perturbation (DeepAFx, Eq. 2).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import _native
from .host import Chain

STRATEGIES = ("lockstep", "replay", "snapshot")
ESTIMATORS = ("two-sided", "one-sided", "fd")
ISOLATIONS = ("none", "process")


class _Staging:
    """Reusable host buffers for moving tensors between a device and the native rack; pinned
    when a CUDA device is involved, so copies run without pageable bounces."""

    def __init__(self):
        self._buffers: Dict[Tuple[str, Tuple[int, ...]], torch.Tensor] = {}

    def to_numpy(self, name: str, tensor: torch.Tensor) -> np.ndarray:
        tensor = tensor.detach()
        if tensor.device.type == "cpu":
            return tensor.to(torch.float32).contiguous().numpy()
        buffer = self._buffer(name, tuple(tensor.shape))
        buffer.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(tensor.device).synchronize()
        return buffer.numpy()

    def to_device(self, name: str, array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        host = torch.from_numpy(array)
        if like.device.type == "cpu":
            return host.to(like.dtype)
        buffer = self._buffer(name, tuple(host.shape))
        buffer.copy_(host)
        return buffer.to(like.device, dtype=like.dtype, non_blocking=True)

    def _buffer(self, name: str, shape: Tuple[int, ...]) -> torch.Tensor:
        key = (name, shape)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(shape, dtype=torch.float32, pin_memory=torch.cuda.is_available())
        return self._buffers[key]


class _PluginFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, theta: torch.Tensor, layer: "PluginLayer") -> torch.Tensor:
        record = bool(ctx.needs_input_grad[1])
        x_np = layer._staging.to_numpy("x", x)
        theta_np = layer._staging.to_numpy("theta", theta)
        y = layer.rack.forward(theta_np, x_np, record)
        layer._frames += 1
        ctx.layer = layer
        ctx.frame = layer._frames
        ctx.theta_like = theta
        return layer._staging.to_device("y", y, x)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        layer: PluginLayer = ctx.layer
        if layer._frames != ctx.frame:
            raise RuntimeError(
                "PluginLayer: backward must run before the layer's next forward; the plugins are "
                "stateful and keep only the last frame (call backward once per step)"
            )
        grad_theta = layer.rack.vjp(layer._staging.to_numpy("grad_y", grad_y))
        faulted = layer.rack.faulted
        if faulted.any():
            # Faulted lanes' gradients are zero; the batch mean is taken over the healthy lanes
            # (the loss is assumed to average over the batch, as the trainer's does).
            healthy = int((~faulted).sum())
            grad_theta *= len(faulted) / healthy if healthy else 0.0
        return None, layer._staging.to_device("grad_theta", grad_theta, ctx.theta_like), None


class PluginLayer(nn.Module):
    """Real plugins as a layer: ``y = layer(x, theta)``.

    Args:
        chain: a :class:`fxgrad.Chain`, or a single plugin (all its automatable, non-bypass
            parameters learned).
        lanes: M, the batch size: lane m keeps its own plugin instances and must receive the
            consecutive frames of one clip; call :meth:`reset_lanes` when a lane changes clip.
        eps: SPSA step in normalised parameter units (DeepAFx: 0.01).
        perturbations: K perturbations averaged per step.
        strategy: where perturbed evaluations start from. ``"lockstep"`` (DeepAFx: extra
            instances stream along with their own perturbed settings, so their state drifts from
            the centre's), ``"replay"`` (replay the lane's last ``replay_samples`` of input with
            the centre's parameter history before each perturbed frame, starting from the lane's
            start state: exact while the lane's clip is younger than the history, and for effects
            whose memory is shorter; it costs a plugin re-initialisation and R/N extra renders per
            evaluation), ``"snapshot"`` (copy the centre's full DSP state; plugins that
            carry it, i.e. fxgrad's own: exact).
        estimator: ``"two-sided"`` (Eq. 2, 2K renders per item), ``"one-sided"`` (K renders,
            reusing the forward output; replay/snapshot only) or ``"fd"`` (Eq. 1, 2P renders:
            for validation).
        replay_samples: history replayed by ``"replay"``; default a quarter second, which
            leaves a few percent of error on compressors with releases of several hundred ms
            (``bench/gradient_fidelity.py``: 1 s brings it to about 0.2 %, at 4x the renders).
            Lockstep evaluators render only frames whose forward records (``theta`` requires
            grad): a forward under ``torch.no_grad`` is a gap in their input.
        threads: native render threads (default: all cores), over all workers with isolation.
        seed: perturbations come from a counter-based generator keyed on (seed, step, lane, k):
            gradients are bit-identical for any thread or worker count, isolated or not.
        isolation: ``"none"`` (lanes in this process) or ``"process"`` (lanes in sandboxed worker
            processes, ``fxgrad-worker``: a plugin that crashes or hangs costs the lanes of one
            worker for one step, not the process). Outputs and gradients are bit-identical to
            ``"none"``.
        workers: worker processes with isolation (default: one per four threads, at least one, at most
            one per lane; a fault costs the lanes of one worker for one step).
        timeout_s: a worker's deadline per call, after which it counts as hung, is killed and
            restarted (default: 20x the slowest call so far, at least 10 s; 60 s before the first).
        worker_log: file that receives what plugins print in workers (default: this process's
            stderr).
        max_faults, max_faults_per_minute: the fault budget; past it the layer raises
            :class:`fxgrad.PluginCrashedError` (or ``PluginTimeoutError`` / ``PluginOutputError``)
            naming the plugin. 0: no limit.

    Faults: a plugin that emits NaN/Inf (any isolation), crashes or hangs (``"process"``) costs
    the lanes it hit for one step: they restart from the chain's preset state (treat them as
    lanes that start a new clip), their output of that step is zero, their gradient is zero and
    the others' are rescaled so the batch mean is over healthy lanes. :attr:`faulted` says which
    lanes faulted in the last step; :meth:`take_faults` returns the reports, with the plugin, the
    kind of fault (signal name, timeout, NaN), the lane and the normalised and plain parameter
    values that were being rendered: a reproducer to pin or clamp.

    Shapes: ``x`` (M, C, N) audio, ``theta`` (M, P) in [0, 1]; returns (M, C, N). N must be a
    multiple of the chain's block size. CUDA tensors are staged through pinned host memory and
    the output returns on ``x``'s device. Backward gives the SPSA estimate for ``theta``; the
    input gradient is ``None`` (the method does not estimate it).
    """

    def __init__(
        self,
        chain: Union[Chain, _native.Chain, _native.Plugin],
        lanes: int,
        eps: float = 0.01,
        perturbations: int = 1,
        strategy: str = "lockstep",
        estimator: str = "two-sided",
        replay_samples: Optional[int] = None,
        threads: Optional[int] = None,
        seed: int = 0,
        isolation: str = "none",
        workers: int = 0,
        timeout_s: Optional[float] = None,
        worker_log: Optional[os.PathLike] = None,
        max_faults: int = 1000,
        max_faults_per_minute: int = 30,
    ):
        super().__init__()
        if isinstance(chain, _native.Plugin):
            chain = Chain([chain])
        if not isinstance(chain, _native.Chain):
            raise TypeError(f"chain must be a fxgrad.Chain or Plugin, got {type(chain).__name__}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
        if replay_samples is None:
            replay_samples = int(round(0.25 * chain.sample_rate))
        self.chain = chain
        self.strategy = strategy
        self.estimator = estimator
        self.eps = float(eps)
        self.perturbations = int(perturbations)
        self.rack = _native.Rack(
            chain, int(lanes), float(eps), int(perturbations), strategy, estimator,
            int(replay_samples), int(threads or os.cpu_count() or 1), int(seed),
            isolation, int(workers), float(timeout_s or 0.0), os.fspath(worker_log) if worker_log else "",
            int(max_faults), int(max_faults_per_minute),
        )
        self.isolation = isolation
        self._staging = _Staging()
        self._frames = 0

    @property
    def num_parameters(self) -> int:
        """P: the number of learned parameters."""
        return self.rack.num_parameters

    @property
    def lanes(self) -> int:
        return self.rack.lanes

    @property
    def step(self) -> int:
        """SPSA step counter (advanced by each backward); part of a checkpoint."""
        return self.rack.step

    @step.setter
    def step(self, value: int) -> None:
        self.rack.step = int(value)

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"x must be (lanes, channels, samples), got shape {tuple(x.shape)}")
        if theta.dim() != 2:
            raise ValueError(f"theta must be (lanes, parameters), got shape {tuple(theta.shape)}")
        if not torch.isfinite(theta).all():
            raise ValueError("theta contains NaN or Inf")
        return _PluginFunction.apply(x, theta, self)

    @property
    def faulted(self) -> torch.Tensor:
        """bool (M,): lanes that faulted since the last forward (their output of that forward is
        zero and they restarted from the preset state)."""
        return torch.from_numpy(self.rack.faulted)

    def take_faults(self) -> List[Dict]:
        """Fault reports since the last call, oldest first: dicts with ``kind`` (``"crash"``,
        ``"exit"``, ``"timeout"``, ``"nan"``), ``detail`` (e.g. ``"SIGSEGV"``), ``step``,
        ``lanes`` (lost), ``lane`` and ``phase`` (what was rendering), ``plugin``,
        ``normalized`` and ``plain`` (parameter name -> value being rendered)."""
        return self.rack.take_faults()

    def reset_lanes(self, mask, preroll: Optional[torch.Tensor] = None) -> None:
        """Return the masked lanes (bool, shape (M,)) to the chain's preset state with clear DSP
        state, e.g. when they start a new clip; ``preroll`` (M, C, R) warms them up."""
        mask_np = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=bool)
        preroll_np = None if preroll is None else self._staging.to_numpy("preroll", preroll)
        self.rack.reset_lanes(mask_np, preroll_np)

    def extra_repr(self) -> str:
        return (f"lanes={self.lanes}, parameters={self.num_parameters}, strategy={self.strategy!r}, "
                f"estimator={self.estimator!r}, eps={self.eps}, perturbations={self.perturbations}, "
                f"threads={self.rack.threads}, isolation={self.isolation!r}")
