"""Atomic writes: nothing is left half-written. Write to a temporary path, then rename.

A write that fails because the disk is full (``ENOSPC``, or a quota's ``EDQUOT``) is an
``MrsError`` naming the directory, after the temporary is removed: torch and safetensors report
it as ``RuntimeError: [enforce fail at inline_container.cc:…]`` or a Rust ``IoError``, which
says nothing a user can act on (``disk_full`` recognises them).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from mrs.errors import MrsError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(MrsError):
    """A write failed for lack of space; the outermost atomic writer names its directory."""


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = True,
               carry: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it onto ``final`` only if the block succeeds.

    A killed or failing run leaves ``final`` untouched (the temporary ``.<name>.tmp-*`` sibling is
    removed on exceptions; after a hard kill it may remain and is ignored by readers).
    ``carry``: entries of an existing ``final`` moved into the new directory right after the swap
    (a re-prepared dataset keeps its ``features/`` and ``images/``); the rest of the old directory
    is deleted, so callers decide what may go. An existing *file* at ``final`` is never replaced.
    """
    final, carry = Path(final), list(carry)
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"{final} exists and is not a directory")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; results should be as readable as mkdir's
    try:
        yield tmp
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_if_disk_full(e, final)
        raise
    if final.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{final} already exists")
        clash = [n for n in carry if (tmp / n).exists() and ((final / n).exists() or (final / n).is_symlink())]
        if clash:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{final / clash[0]}: the new {final.name} also writes {clash[0]!r}")
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        # Carried entries move after the swap: a kill here leaves them in ``old``, a complete
        # previous output from which the next run restores them (mrs.prep.outdir).
        for name in carry:
            src = old / name
            if src.exists() or src.is_symlink():
                os.rename(src, final / name)  # same filesystem: a rename, never a copy
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``final``; rename onto ``final`` when the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    # mkstemp makes 0600 and the rename keeps it: give results the mode open() would (umask)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, final)  # fails on a directory at ``final``: the temporary goes too
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        _raise_if_disk_full(e, final)
        raise


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or an exception it was raised from) is a full disk or exhausted quota.
    torch.save to a Python file object raises a RuntimeError whose context is the OSError."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DiskFull) or (isinstance(cur, OSError) and cur.errno in DISK_FULL):
            return True
        if not isinstance(cur, OSError) and "No space left on device" in str(cur):  # Rust / C++ text
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _raise_if_disk_full(e: BaseException, final: Path) -> None:
    """Re-raised by each enclosing writer, so the message names the real (not a temporary) place."""
    if disk_full(e):
        raise DiskFull(f"no space left on device: {final.parent} (writing {final.name}); "
                       f"free some space and run again") from None


def chmod_default(p: str | os.PathLike) -> None:
    """The mode ``open``/``mkdir`` would give under the umask (temporaries are created 0600, and
    safetensors writes 0600 whatever the umask)."""
    p = Path(p)
    os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~_umask())


def remove_stale_temps(directory: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Remove ``.<name>.tmp-*`` files that a hard-killed ``atomic_path`` left for ``names``
    (only call this while holding the directory's writer lock: then no other writer owns them)."""
    d, gone = Path(directory), []
    for name in names:
        for p in d.glob(f".{name}.tmp-*"):
            if p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                gone.append(p)
    return gone


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def file_checksum(paths: list[str | os.PathLike], chunk: int = 1 << 20) -> str:
    """sha256 over the bytes of the given files (in order), as hex. Streams: any size."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()
