"""Reading torch files (checkpoints, model weights) without running code from them.

``torch.load(weights_only=False)`` unpickles arbitrary objects, so a crafted ``last.pt`` can run
a shell command the moment it is read. Everything mrs reads goes through ``load_torch_file``:
``weights_only=True`` (tensors, dicts, lists, tuples, strings, numbers, ``OrderedDict``), and any
refusal or damage is a one-line ``MrsError`` naming the file. What mrs writes is kept in that
form (see ``mrs.train.checkpoint``), so its own files always load.
"""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

from mrs.errors import MrsError


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; ``MrsError`` when refused or unreadable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MrsError(f"{path}: no {what} file")
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle protocol before refusing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise MrsError(f"{path}: refused to load this {what}: it holds Python objects beyond tensors "
                       f"and plain data ({_unsafe_reason(e)}); mrs never unpickles code, so it was "
                       f"not written by this version of mrs") from None
    except Exception as e:  # truncated, not a torch file, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise MrsError(f"{path}: cannot read {what} ({type(e).__name__}: {msg[:200]})") from None


def _unsafe_reason(e: Exception) -> str:
    """The informative line of torch's multi-paragraph weights-only refusal."""
    for line in str(e).splitlines():
        line = line.strip()
        low = line.lower()
        if "unsupported" in low or "weightsunpickler error" in low:
            line = line.replace("WeightsUnpickler error: ", "").replace("Trying to load unsupported", "unsupported")
            return line.split(" was not an allowed")[0].rstrip(".")[:200]
    return type(e).__name__
