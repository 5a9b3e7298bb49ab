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
from .base.checks import (
    available_memory,
    cores,
    format_bytes,
    integer,
    resident_bytes,
    thread_headroom,
)
from .host.plugins import Chain

# The option names come from the native rack's one table of them (cpp/bindings/Names.h).
STRATEGIES = _native.STRATEGIES
ESTIMATORS = _native.ESTIMATORS
ISOLATIONS = _native.ISOLATIONS
DIRECTIONS = _native.DIRECTIONS

#: The smallest SPSA step: 256 float32 steps (ulps) of any normalised value in [0, 1], so that
#: theta +- eps survives rounding within 0.4 %; a smaller step rounds to theta itself, and the
#: estimate divides by zero (NaN gradients).
MIN_EPS = 2.0**-16
#: Native worker threads per core a layer may start: plugins are CPU-bound, so more threads
#: only add switching, and each one takes a share of the OS thread limit.
THREADS_PER_CORE = 8
#: Perturbations averaged per step at most: a step renders 2K perturbed frames per lane, and
#: the estimate's variance falls only as 1/K (the "fd" estimator is exact with 2P renders).
MAX_PERTURBATIONS = 4096
# One chain instance takes at least this much memory; a rack that fits even at the generous
# figure is not measured.
_MIN_CHAIN_BYTES = 256 * 1024
_GENEROUS_CHAIN_BYTES = 64 * 1024 * 1024


def chains_per_lane(strategy: str, estimator: str, perturbations: int, parameters: int) -> int:
    """Chain instances a lane of the native rack owns: its centre and its evaluators (lockstep:
    one per perturbed evaluation; replay/snapshot: at most two, restored before each)."""
    evaluations = 2 * parameters if estimator == "fd" else perturbations * (1 if estimator == "one-sided" else 2)
    return 1 + (evaluations if strategy == "lockstep" else min(evaluations, 2))


def _chain_bytes(chain: _native.Chain) -> int:
    """Memory one more instance of ``chain`` takes, measured on a clone (at least
    ``_MIN_CHAIN_BYTES``: a freed heap may hand a clone memory it already holds)."""
    before = resident_bytes()
    probe = chain.clone()
    after = resident_bytes()
    del probe
    return max(_MIN_CHAIN_BYTES, (after or 0) - (before or 0))


def check_capacity(
    chain: _native.Chain,
    lanes: int,
    perturbations: int,
    strategy: str,
    estimator: str,
    replay_samples: int,
    threads: int,
) -> None:
    """Raise ``ValueError`` with the figures when a rack of these settings needs more threads
    than this machine can run or more memory than it has available (checked before any lane
    exists: an oversized rack would otherwise run for minutes and starve the machine)."""
    if not 1 <= perturbations <= MAX_PERTURBATIONS:
        raise ValueError(f"perturbations must be between 1 and {MAX_PERTURBATIONS}, got {perturbations}")
    count = cores()
    allowed = THREADS_PER_CORE * count
    headroom, limit = thread_headroom()
    if headroom is not None:
        allowed = max(1, min(allowed, headroom // 2))
    if threads > allowed:
        os_note = (
            "" if headroom is None else f"; the OS allows {headroom} more threads ({limit}), half of them for fxgrad"
        )
        raise ValueError(
            f"threads={threads} is more than this machine can run: at most {allowed} "
            f"({THREADS_PER_CORE} per core on {count} cores{os_note})"
        )
    available, source = available_memory()
    if available is None:
        return
    per_lane_chains = chains_per_lane(strategy, estimator, perturbations, chain.num_parameters)
    # Replay keeps each lane's recent input (and the perturbed renders' outputs as large).
    history = 2 * 4 * chain.channels * replay_samples if strategy == "replay" else 0
    if lanes * (per_lane_chains * _GENEROUS_CHAIN_BYTES + history) <= available:
        return
    per_chain = _chain_bytes(chain)
    per_lane = per_lane_chains * per_chain + history
    if lanes * per_lane > available:
        raise ValueError(
            f"lanes={lanes} needs {lanes * per_lane_chains} plugin chain instances ({per_lane_chains} per lane with "
            f"strategy {strategy!r}, estimator {estimator!r}, perturbations={perturbations}), at least "
            f"{format_bytes(lanes * per_lane)} ({format_bytes(per_chain)} per instance, measured on one"
            + (f", and {format_bytes(history)} of replay history per lane" if history else "")
            + f"); {format_bytes(available)} of memory is available ({source}): at most {available // per_lane} "
            f"lanes would fit"
        )


def _check_eps(eps) -> None:
    """Raise ``TypeError`` / ``ValueError`` unless ``eps`` is a number in [``MIN_EPS``, 0.5)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"eps must be a number, got {eps!r}")
    if not MIN_EPS <= eps < 0.5:
        raise ValueError(
            f"eps must be in [2**-16 = {MIN_EPS:.3g}, 0.5) (normalised units; a smaller step is lost "
            f"to float32 rounding of the parameters and gives NaN gradients), got {eps!r}"
        )


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
        out = layer._staging.to_device("grad_theta", grad_theta, ctx.theta_like)
        if not bool(torch.isfinite(out).all()):
            # float32 arithmetic in the rack is finite; theta's own dtype may not hold the value.
            largest = float(np.abs(grad_theta).max())
            raise ValueError(
                f"PluginLayer: the gradient for theta is not finite in theta's dtype {ctx.theta_like.dtype} (its "
                f"largest magnitude is {largest:.3g}; the upstream gradient peaks at {float(grad_y.abs().max()):.3g}): "
                "check the loss and the input's level (audio is expected within about +-1), or use float32 theta"
            )
        return None, out, None


class PluginLayer(nn.Module):
    """Real plugins as a layer: ``y = layer(x, theta)``.

    The gradient is computed in C++ by the rack this layer wraps: ``cpp/fxgrad/Rack.h``
    (``Rack::forward`` renders and records a frame, ``Rack::vjp`` draws the perturbations,
    renders them and reduces Eq. 2 to the vector-Jacobian product; ``Rack.cpp`` holds the
    arithmetic, ``Lanes.h`` / ``IsolatedLanes.h`` where the renders run).

    Args:
        chain: a :class:`fxgrad.Chain`, or a single plugin (all its automatable, non-bypass
            parameters learned).
        lanes: M, the batch size: lane m keeps its own plugin instances and must receive the
            consecutive frames of one clip; call :meth:`reset_lanes` when a lane changes clip.
        eps: SPSA step in normalised parameter units (DeepAFx: 0.01), in [``MIN_EPS``, 0.5).
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
        threads: native render threads, over all workers with isolation (default: all cores; at
            most ``THREADS_PER_CORE`` per core and half the threads the OS still allows).
        seed: perturbations come from a counter-based generator keyed on (seed, step, lane, k):
            gradients are bit-identical for any thread or worker count, isolated or not.
        isolation: ``"none"`` (lanes in this process), ``"process"`` (lanes in worker
            processes, ``fxgrad-worker``: a plugin that crashes or hangs costs the lanes of one
            worker for one step, not the process) or ``"sandbox"`` (those workers in namespaces
            behind a seccomp filter: no exec, sockets or network, a read-only file system but a
            private folder; docs/training.md has the threat model). Outputs and gradients are
            bit-identical to ``"none"``.
        workers: worker processes with isolation (default: one per four threads, at least one, at most
            one per lane; a fault costs the lanes of one worker for one step).
        timeout_s: a worker's deadline per call in seconds, after which it counts as hung, is
            killed and restarted (default ``fxgrad._native.DEFAULT_TIMEOUT_S``, 30 s); the same
            for every call, so n hangs cost at most n times it (a reset's preroll adds its share).
            While the layer waits on its workers, this process's signal handlers run (Ctrl-C
            raises ``KeyboardInterrupt`` within about 10 ms; see :meth:`interrupt`).
        worker_log: file that receives what plugins print in workers (default: this process's
            stderr).
        max_faults, max_faults_per_minute: the fault budget; past it the layer raises
            :class:`fxgrad.PluginCrashedError` (or ``PluginTimeoutError`` / ``PluginOutputError``)
            naming the plugin. 0: no limit.
        directions: how the K directions of a lane and step are drawn: ``"rademacher"``
            (DeepAFx: independent +-1 signs), ``"orthogonal"`` (K mutually orthogonal Gaussian
            directions of norm sqrt(P): K = P gives the exact gradient of a linear chain) or
            ``"guided"`` (guided ES: ``1 - guided_share`` of the perturbation lies in the span of
            the lane's last ``subspace`` estimates; the estimate leans towards that span).
        shared: every lane of a step uses the same directions (lane 0's).
        baseline: a control variate: each lane keeps the running mean b of its estimates
            (``b <- baseline b + (1 - baseline) g``) and subtracts what b predicts from each
            difference before adding b back; unbiased, and less noisy while a lane's gradient
            changes slowly. 0: none. Lanes that reset (a new clip) or fault start from b = 0.

    Faults: a plugin that emits NaN/Inf (any isolation), crashes or hangs (``"process"``, ``"sandbox"``) costs
    the lanes it hit for one step: they restart from the chain's preset state (treat them as
    lanes that start a new clip), their output of that step is zero, their gradient is zero and
    the others' are rescaled so the batch mean is over healthy lanes. :attr:`faulted` says which
    lanes faulted in the last step; :meth:`take_faults` returns the reports, with the plugin, the
    kind of fault (signal name, timeout, NaN), the lane and the normalised and plain parameter
    values that were being rendered: a reproducer to pin or clamp.

    Raises ``TypeError`` for a non-integer count or a non-floating-point tensor, ``ValueError``
    for a value out of range, including a rack that needs more threads or memory than this
    machine has (the message gives the figures; checked before the lanes are made).

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
        directions: str = "rademacher",
        shared: bool = False,
        baseline: float = 0.0,
        subspace: int = 0,
        guided_share: float = 0.5,
    ):
        super().__init__()
        if isinstance(chain, _native.Plugin):
            chain = Chain([chain])
        if not isinstance(chain, _native.Chain):
            raise TypeError(f"chain must be a fxgrad.Chain or Plugin, got {type(chain).__name__}")
        for name, value, choices in (
            ("strategy", strategy, STRATEGIES),
            ("estimator", estimator, ESTIMATORS),
            ("isolation", isolation, ISOLATIONS),
            ("directions", directions, DIRECTIONS),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        lanes, perturbations = integer(lanes, "lanes"), integer(perturbations, "perturbations")
        replay_samples = (
            int(round(0.25 * chain.sample_rate))
            if replay_samples is None
            else integer(replay_samples, "replay_samples")
        )
        threads = (os.cpu_count() or 1) if threads is None else integer(threads, "threads")
        seed = integer(seed, "seed")
        _check_eps(eps)
        for name, value in (("lanes", lanes), ("threads", threads)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if replay_samples < 0:
            raise ValueError(f"replay_samples must be >= 0, got {replay_samples}")
        if not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        check_capacity(chain, lanes, perturbations, strategy, estimator, replay_samples, threads)
        self.chain = chain
        self.strategy = strategy
        self.estimator = estimator
        self.eps = float(eps)
        self.perturbations = perturbations
        self.directions = directions
        self.rack = _native.Rack(
            chain,
            lanes,
            self.eps,
            perturbations,
            strategy,
            estimator,
            replay_samples,
            threads,
            seed,
            isolation,
            integer(workers, "workers"),
            float(timeout_s or 0.0),
            os.fspath(worker_log) if worker_log else "",
            integer(max_faults, "max_faults"),
            integer(max_faults_per_minute, "max_faults_per_minute"),
            directions,
            bool(shared),
            float(baseline),
            integer(subspace, "subspace"),
            float(guided_share),
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
        for name, tensor in (("x", x), ("theta", theta)):
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
            if not tensor.dtype.is_floating_point:
                raise TypeError(
                    f"{name} must be a floating-point tensor (the plugins render float32), got {tensor.dtype}"
                )
        if x.dim() != 3:
            raise ValueError(f"x must be (lanes, channels, samples), got shape {tuple(x.shape)}")
        if theta.dim() != 2:
            raise ValueError(f"theta must be (lanes, parameters), got shape {tuple(theta.shape)}")
        if not torch.isfinite(theta).all():
            raise ValueError("theta contains NaN or Inf")
        return _PluginFunction.apply(x, theta, self)

    def interrupt(self) -> None:
        """Give up on the plugins, from a signal handler: a call still waiting on the isolated
        workers 0.3 s from now is abandoned (raising ``KeyboardInterrupt``; the workers
        still busy are stopped), and so is every later call. What the trainer does on Ctrl-C."""
        self.rack.interrupt()

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
        return (
            f"lanes={self.lanes}, parameters={self.num_parameters}, strategy={self.strategy!r}, "
            f"estimator={self.estimator!r}, eps={self.eps}, perturbations={self.perturbations}, "
            f"directions={self.directions!r}, "
            f"threads={self.rack.threads}, isolation={self.isolation!r}"
        )
