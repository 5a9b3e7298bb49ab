"""The torch device a command asked for, checked against the devices this machine has."""

from __future__ import annotations

import torch


def usable_device(preference: str, local_rank: int = 0) -> torch.device:
    """``preference`` (``"auto"``: CUDA when available; ``"cpu"``, ``"cuda"`` (the local rank's
    GPU), ``"cuda:1"``, ...) as a device this machine has.

    Raises ``ValueError`` naming the request and the devices there are, before anything uses it
    (torch would fail later with an AssertionError or "invalid device ordinal")."""
    if not isinstance(preference, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {preference!r}")
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if preference == "auto":
        preference = "cuda" if cuda else "cpu"
    try:
        device = torch.device(preference)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"device {preference!r} is not a torch device ({error})") from None
    if device.type == "cuda":
        if not cuda:
            raise ValueError(f"device {preference!r}: no CUDA device is available here (use 'auto' or 'cpu')")
        if device.index is None:
            return torch.device("cuda", local_rank % cuda)
        if device.index >= cuda:
            raise ValueError(
                f"device {preference!r}: this machine has {cuda} CUDA device(s), "
                f"{', '.join(f'cuda:{k}' for k in range(cuda))}"
            )
        return device
    if device.type != "cpu":
        try:
            torch.empty(1, device=device)
        except Exception as error:  # each backend fails in its own way
            raise ValueError(f"device {preference!r} is not usable here ({type(error).__name__}: {error})") from None
    return device
