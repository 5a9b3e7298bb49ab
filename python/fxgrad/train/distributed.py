"""This process's place in a ``torchrun`` run: the process group, the device, gradient averaging."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List

import torch
import torch.distributed as dist

from ..base.device import usable_device
from .errors import TrainingError


@dataclass
class World:
    """This process's place in a (possibly) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        if self.distributed:
            dist.barrier()

    def gather(self, value: Any) -> List[Any]:
        """``value`` from every rank, in rank order (collective: every rank must call it)."""
        if not self.distributed:
            return [value]
        out: List[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (collective)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, 0)
        return box[0]


def init_distributed(device: str = "auto") -> World:
    """Join the process group that ``torchrun`` describes in the environment (NCCL on CUDA,
    gloo on CPU); a plain single process when there is none."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if dist.is_initialized():
        return World(
            dist.get_rank(),
            dist.get_world_size(),
            int(os.environ.get("LOCAL_RANK", dist.get_rank())),
            int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())),
        )
    return World()


def resolve_device(preference: str, world: World) -> torch.device:
    """The torch device of ``config.device`` for this rank (a :class:`TrainingError` if unusable)."""
    try:
        return usable_device(preference, world.local_rank)
    except ValueError as error:
        raise TrainingError(str(error)) from None


def average_gradients(parameters: Iterable[torch.nn.Parameter], world_size: int) -> None:
    """All-reduce the gradients to their mean over ranks, in one flat buffer (the pipelined mode
    updates weights without DDP's wrapper, which would otherwise do this)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def stop_flags(stop: bool, late: bool, device: torch.device, world: World) -> tuple:
    """``(stop, late)`` true on every rank when true on any (one all-reduce for both)."""
    if not world.distributed:
        return stop, late
    flags = torch.tensor([int(stop), int(late)], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return bool(flags[0].item()), bool(flags[1].item())


def mean_over_ranks(value: float, world: World) -> float:
    """The mean of a float over ranks."""
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor) / world.world_size


def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's weights and buffers on every rank (pipelined runs: the same start everywhere)."""
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, 0)


def check_replicas(module: torch.nn.Module, world: World, note: Callable[[str], None]) -> bool:
    """Under DDP: are ``module``'s weights identical on every rank? (They must be: each rank
    applies the same averaged gradients.) Reports the result through ``note``."""
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in module.parameters()])
    checksums = world.gather(float(flat.sum()) + float((flat * flat).sum()))
    same = len(set(checksums)) == 1
    note(
        f"DDP: {world.world_size} ranks; encoder weights "
        + ("identical on every rank" if same else f"DIFFER between ranks: {checksums}")
    )
    return same
