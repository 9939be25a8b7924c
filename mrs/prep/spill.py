"""Reading a file far larger than memory: id dictionaries bounded by distinct ids, columns spilled.

Two parts, used by the Amazon 2023 jsonl reader of ``engine=numpy`` (:mod:`mrs.prep.jsonl`; the
default ``engine=duckdb`` numbers ids out of core instead, :mod:`mrs.prep.duckpost`):

- :class:`GlobalIds`: raw string ids -> ``0..n-1`` in order of first appearance. Each block is
  dictionary-encoded on its own (C++); the blocks' dictionaries wait in memory only until they
  reach ``flush_bytes``, then one ``pc.dictionary_encode`` over ``[uniques so far] + pending``
  (a shared C++ memo table, in order, so the uniques keep their codes) maps them to global codes,
  which are appended to a spill file as int32. What stays in memory is one string per distinct
  id, never one per row: the per-block dictionaries of a 66M-line file were the ~115 bytes of
  RSS per input row measured in issue 12.
- :class:`SpillColumn`: numbers appended block by block to a raw file, read back once at the end.

:func:`spill_dir` makes the directory beside the output (``.<name>.spill-<pid>``), removes it
on success, on any exception and on SIGTERM, and clears one a killed run (SIGKILL) left behind
when the next prepare of the same output starts. A full disk fails with the file named.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mrs.errors import MrsError


@contextlib.contextmanager
def spill_dir(out: str | os.PathLike) -> Iterator[Path]:
    """A fresh ``.<out name>.spill-<pid>`` beside ``out``, removed whatever happens."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.spill-*"):       # left by a killed run
        pid = old.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = out.parent / f".{out.name}.spill-{os.getpid()}"
    path.mkdir()
    prev, got = None, []
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):   # SIGTERM unwinds like Ctrl-C, so the finally below runs
            got.append(signum)
            raise SystemExit(128 + signum)
        prev = signal.signal(signal.SIGTERM, on_term)
    try:
        yield path
    except Exception:
        if got:                       # a C library (DuckDB) turned the SystemExit into its own error
            raise SystemExit(128 + got[0]) from None
        raise
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if prev is not None:
            signal.signal(signal.SIGTERM, prev)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def disk_errors(path: Path) -> Iterator[None]:
    """A full disk (or another write error) while writing ``path`` fails in one line naming it."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e):
            raise MrsError(f"{path}: disk full while spilling ({e.strerror or e}); free space there or "
                           f"point the output elsewhere") from None
        raise MrsError(f"{path}: cannot write spill file ({e.strerror or e})") from None


def _write(fh, path: Path, arr: np.ndarray) -> None:
    try:
        fh.write(np.ascontiguousarray(arr).tobytes())
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise MrsError(f"{path}: disk full while spilling ({e.strerror}); free space there or "
                           f"point the output elsewhere") from None
        raise MrsError(f"{path}: cannot write spill file ({e.strerror})") from None


class SpillColumn:
    """A numeric column appended in blocks to ``path`` (raw ``dtype`` bytes)."""

    def __init__(self, path: Path, dtype: np.dtype | str):
        self.path, self.dtype, self.n = Path(path), np.dtype(dtype), 0
        self._fh = None

    def append(self, arr: np.ndarray) -> None:
        if self._fh is None:
            self._fh = open(self.path, "wb", buffering=0)  # unbuffered: a full disk fails in append
        _write(self._fh, self.path, np.asarray(arr, dtype=self.dtype))
        self.n += len(arr)

    def close(self) -> None:
        """Flush and close the file (it stays for :meth:`read` or :meth:`chunks`)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The values in blocks of ``rows``, read (not memory-mapped: mapped pages would count as
        resident memory) one block at a time."""
        self.close()
        with open(self.path, "rb") if self.n else contextlib.nullcontext() as f:
            for start in range(0, self.n, rows):
                yield np.fromfile(f, dtype=self.dtype, count=min(rows, self.n - start))

    def read(self) -> np.ndarray:
        """All values ``(n,)``, in memory (one copy, no per-block lists); the file is deleted."""
        self.close()
        if self.n == 0:
            return np.zeros(0, self.dtype)
        out = np.fromfile(self.path, dtype=self.dtype, count=self.n)
        self.path.unlink(missing_ok=True)
        return out


class GlobalIds:
    """Incremental string-id dictionary whose memory is bounded by distinct ids (module doc)."""

    def __init__(self, spill: Path, name: str, flush_bytes: int = 1 << 26):
        self.codes = SpillColumn(Path(spill) / f"{name}.codes.i32", np.int32)
        self.uniques: pa.Array = pa.array([], pa.large_string())
        self.flush_bytes = flush_bytes
        self._pending: list[tuple[np.ndarray, pa.Array]] = []
        self._pending_bytes = 0

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        enc = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
        local = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        dic = enc.dictionary.cast(pa.large_string())
        self._pending.append((local, dic))
        self._pending_bytes += local.nbytes + dic.nbytes
        if self._pending_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Map the pending blocks to global codes (appended to the spill file)."""
        if not self._pending:
            return
        head = [self.uniques] if len(self.uniques) else []   # the uniques keep codes 0..n-1
        enc = pc.dictionary_encode(pa.chunked_array(head + [d for _, d in self._pending],
                                                    type=pa.large_string()))
        chunks = enc.chunks
        if len(chunks) != len(head) + len(self._pending):
            raise AssertionError("dictionary_encode dropped a chunk")
        self.uniques = chunks[0].dictionary
        for (local, _), chunk in zip(self._pending, chunks[len(head):]):
            remap = chunk.indices.to_numpy(zero_copy_only=False).astype(np.int32)
            self.codes.append(remap[local])
        self._pending, self._pending_bytes = [], 0
        if len(self.uniques) >= 2**31 - 1:
            raise MrsError(f"{self.codes.path}: more than 2^31 distinct ids")

    def finish(self) -> tuple[np.ndarray, pa.Array]:
        """(global code per added value ``(N,)`` int32, unique raw ids in code order)."""
        self.flush()
        return self.codes.read(), self.uniques

    def finish_spilled(self) -> tuple[SpillColumn, pa.Array]:
        """Like :meth:`finish`, but the codes stay in their (closed) spill file."""
        self.flush()
        self.codes.close()
        return self.codes, self.uniques


@dataclass
class Spilled:
    """A review file read to disk: ``n`` good rows as spill ``columns`` in file order, and the id
    dictionaries (code -> raw id), which hold one string per distinct id."""

    n: int
    columns: dict[str, SpillColumn]
    user_ids: pa.Array
    item_ids: pa.Array
