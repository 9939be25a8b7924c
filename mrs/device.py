"""One rule for picking the torch device, shared by feature extraction and training."""
from __future__ import annotations

import torch

from mrs.errors import MrsError


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto`` -> cuda when available, else cpu; an explicit ``cuda`` without a GPU is an error
    naming the config ``key`` rather than a torch traceback later."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MrsError(f"config key {key!r}: {name} requested but no GPU is available")
    return torch.device(name)
