"""Helpers shared by every ``mrs prepare`` source: bad-row accounting, input checks, id
factorisation, k-core filtering, checksums and timestamp-derived tensor modes.

Nothing here knows about a particular source; each source module (``hm``, ``amazon2023``,
``amazon2014``) reads its raw format and calls these.
"""
from __future__ import annotations

import contextlib
import gzip
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from mrs.errors import MrsError
from mrs.io import file_checksum

log = logging.getLogger("mrs.prep")

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
SEASONS = ["winter", "spring", "summer", "autumn"]  # DJF, MAM, JJA, SON (northern hemisphere)


# --------------------------------------------------------------------------- bad input
@dataclass
class BadRows:
    """Malformed rows of one input file: skipped and counted, never silently.

    The first ``keep`` positions are reported as ``file:line (reason)``. ``check()`` warns once
    and raises ``MrsError`` naming the file when the bad fraction exceeds ``max_frac``.
    """

    path: str
    max_frac: float = 0.01
    keep: int = 5
    total: int = 0                      # rows seen (good + bad)
    bad: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first: list[str] = field(default_factory=list)

    def add(self, line: int | None, reason: str, count: int = 1) -> None:
        self.bad += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count
        if len(self.first) < self.keep:
            where = f"{self.path}:{line}" if line is not None else self.path
            self.first.append(f"{where} ({reason})")

    def add_lines(self, lines: Iterable[int], reason: str) -> None:
        """Record many bad rows at once (``lines`` are 1-based file line numbers)."""
        lines = list(lines) if not isinstance(lines, np.ndarray) else lines
        n = len(lines)
        if n == 0:
            return
        self.bad += n
        self.reasons[reason] = self.reasons.get(reason, 0) + n
        for ln in list(lines[: max(0, self.keep - len(self.first))]):
            self.first.append(f"{self.path}:{int(ln)} ({reason})")

    def check(self) -> None:
        if not self.bad:
            return
        frac = self.bad / max(self.total, 1)
        msg = (f"{self.path}: skipped {self.bad} of {self.total} malformed rows "
               f"({', '.join(f'{k}: {v}' for k, v in self.reasons.items())}); first: {'; '.join(self.first)}")
        if frac > self.max_frac:
            raise MrsError(f"{self.path}: {self.bad} of {self.total} rows malformed ({frac:.2%} > "
                           f"max_bad_frac {self.max_frac:.2%}); first: {'; '.join(self.first)}")
        log.warning(msg)

    def summary(self) -> dict:
        return {"rows": self.total, "bad": self.bad, "reasons": dict(self.reasons)}


def require_file(path: str | os.PathLike | None, what: str) -> Path:
    """``path`` as a Path, or a one-line ``MrsError`` naming what is missing."""
    if path is None or str(path) == "":
        raise MrsError(f"{what}: no path given")
    p = Path(path)
    if not p.is_file():
        raise MrsError(f"{what}: file not found: {p}")
    return p


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Decompression and I/O errors while reading ``path`` (a truncated ``.gz``, a ``.gz`` that is
    not gzip) become a one-line ``MrsError`` naming the file instead of a traceback."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise MrsError(f"{path}: truncated or not a gzip file ({type(e).__name__}: {e})") from None
    except OSError as e:  # pyarrow's "Truncated compressed stream", EIO, ...
        if str(path).endswith(".gz"):
            raise MrsError(f"{path}: truncated or not a gzip file ({type(e).__name__}: {e})") from None
        raise MrsError(f"{path}: cannot read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def require_columns(present: Sequence[str], required: Sequence[str], path: str | os.PathLike) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise MrsError(f"{path}: missing required column {missing[0]!r} (found: {', '.join(present)})")


def require_nonnegative(cfg: object, keys: Sequence[str], source: str) -> None:
    """Counts and windows (``last_weeks``, ``test_days``, ``kcore``...) below zero are typos, not
    "none": refuse them rather than silently treating them as 0."""
    for key in keys:
        v = getattr(cfg, key)
        if v < 0:
            raise MrsError(f"{source}: config key {key!r} must be >= 0, got {v}")
    frac = getattr(cfg, "max_bad_frac", 0.0)
    if not 0.0 <= frac <= 1.0:
        raise MrsError(f"{source}: config key 'max_bad_frac' must be in [0, 1], got {frac}")


BOM = b"\xef\xbb\xbf"          # UTF-8 byte order mark some editors (Excel) put first
SECONDS_BELOW = 10 ** 11        # as ms that is 1973-03-03; as s, year 5138: smaller values are seconds
# Float timestamps (RecBole, MMRec) become int64: beyond 2**53 a float is no longer an exact integer
# and 1e30 or inf would wrap to -2**63 in the cast, so larger values are malformed rows.
TIMESTAMP_LIMIT = float(2 ** 53)


def timestamps_to_seconds(ts: np.ndarray, unit: str, where: str) -> tuple[np.ndarray, str]:
    """Unix seconds from ``ts`` in ``unit`` (``ms``, ``s``, or ``auto``); returns (seconds, unit used).

    ``auto`` reads milliseconds (Amazon 2023's unit) unless the values are seconds, which would
    otherwise all land in January 1970 (one time mode): then it warns and converts. A file mixing
    both is refused; ``unit`` forces either.
    """
    small = int(np.count_nonzero(ts < SECONDS_BELOW)) if unit == "auto" and len(ts) else 0
    unit = timestamp_unit(unit, small, len(ts), int(ts[0]) if len(ts) else 0, where)
    return (ts // 1000 if unit == "ms" else ts), unit


def timestamp_unit(unit: str, small: int, n: int, first: int, where: str) -> str:
    """The unit ``auto`` stands for, from ``small`` of ``n`` values below ``SECONDS_BELOW`` (the
    ``first`` value is quoted in the warning); see :func:`timestamps_to_seconds`."""
    if unit != "auto":
        return unit
    if small <= 0.01 * n:
        return "ms"
    if small >= 0.99 * n:
        example = pd.to_datetime(first, unit="s", utc=True).date()
        log.warning("%s: timestamps are in seconds, not milliseconds (%d of %d below 1e11, e.g. %d = %s); "
                    "reading them as seconds (force with --timestamp-unit ms)", where, small, n, first, example)
        return "s"
    raise MrsError(f"{where}: timestamps mix units: {small} of {n} are below 1e11 (seconds) and "
                   f"the rest look like milliseconds; force one with --timestamp-unit s|ms")


def nonempty(n: int, what: str) -> None:
    """Fail with the name of the filter that removed everything."""
    if n == 0:
        raise MrsError(f"no interactions left after {what}")


# --------------------------------------------------------------------------- ids and filtering
def factorize(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..n-1 in order of first appearance, and the unique raw values."""
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64), np.asarray(uniques)


def drop_repeats(df: pd.DataFrame, user: str, item: str, dedup: bool, given_split: str | None,
                 where: str) -> tuple[pd.DataFrame, dict]:
    """``df`` without repeated interactions, and their counts (``dataset.json`` keys).

    A row equal to an earlier one in ``user``, ``item`` and ``timestamp`` (the same event listed
    twice) is always dropped: leave-last-out would otherwise make a user's valid row a copy of the
    test row. ``dedup`` also drops later rows of a (user, item) pair, the earliest by time
    surviving, as the Amazon sources do. With a split given in column ``given_split`` (a benchmark's
    files, MMRec's ``x_label``) rows are deduplicated within a split only, and an event in two
    splits is kept but warned about.
    """
    order = df.sort_values("timestamp", kind="stable").index if "timestamp" in df else df.index
    srt = df.loc[order]
    event = [user, item, *(["timestamp"] if "timestamp" in df else [])]
    within = [given_split] if given_split else []
    same = srt.duplicated(event + within).to_numpy()
    pair = srt.duplicated([user, item] + within).to_numpy() & ~same if dedup else np.zeros(len(srt), bool)
    counts = {"duplicate_rows_dropped": int(same.sum()), "repeated_pairs_dropped": int(pair.sum())}
    if counts["duplicate_rows_dropped"]:
        log.warning("%s: dropped %d rows identical to an earlier row (user, item%s)", where,
                    counts["duplicate_rows_dropped"], ", timestamp" if "timestamp" in df else "")
    if counts["repeated_pairs_dropped"]:
        log.info("%s: dropped %d repeated (user, item) pairs (dedup; the earliest row is kept)", where,
                 counts["repeated_pairs_dropped"])
    kept = df.drop(index=srt.index[same | pair])
    if given_split:
        across = int(kept.duplicated(event).sum())
        if across:
            log.warning("%s: %d events appear in two splits (kept as given)", where, across)
            counts["events_in_two_splits"] = across
    nonempty(len(kept), "dropping repeated rows")
    return kept.reset_index(drop=True), counts


def kcore(user: np.ndarray, item: np.ndarray, k: int, max_iter: int = 100) -> np.ndarray:
    """Boolean mask of rows kept by iterative k-core filtering (every user and item ≥ k rows).

    Vectorised with ``np.bincount``: each pass drops the rows of under-k users or items until
    nothing changes (as in the Amazon 5-core sets). ``k <= 1`` keeps everything.
    """
    keep = np.ones(len(user), dtype=bool)
    if k <= 1:
        return keep
    for _ in range(max_iter):
        u, i = user[keep], item[keep]
        uc = np.bincount(u, minlength=int(user.max()) + 1 if len(user) else 0)
        ic = np.bincount(i, minlength=int(item.max()) + 1 if len(item) else 0)
        bad = (uc[user] < k) | (ic[item] < k)
        new = keep & ~bad
        if new.sum() == keep.sum():
            return new
        keep = new
    return keep


def compact_codes(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-index the used codes (all in 0..n-1) to 0..k-1 keeping their order; returns (new codes,
    used old codes). O(N) with ``bincount``: no sort of the N rows."""
    used = np.flatnonzero(np.bincount(codes, minlength=n))
    remap = np.full(n, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return remap[codes], used


# --------------------------------------------------------------------------- checksum
def input_checksum(paths: Sequence[str | os.PathLike], kind: str = "auto",
                   sha_limit: int = 1 << 30) -> tuple[str, str]:
    """(checksum, kind). ``sha256`` over the bytes, or ``stat`` (name, size, mtime) for inputs
    larger than ``sha_limit`` bytes when ``kind="auto"``: hashing 3.5 GB would eat the budget."""
    paths = [Path(p) for p in paths]
    if kind == "auto":
        kind = "sha256" if sum(p.stat().st_size for p in paths) <= sha_limit else "stat"
    if kind == "sha256":
        return file_checksum(paths), kind
    import hashlib
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest(), "stat"


# --------------------------------------------------------------------------- modes
def time_mode(ts: np.ndarray, kind: str) -> tuple[np.ndarray, dict]:
    """Mode column from unix seconds. ``kind``: month (12), week (ISO week 1..53 → 53),
    season (4), weekday_weekend (2), weekday (7), hour (24)."""
    dt = pd.to_datetime(pd.Series(ts, copy=False), unit="s", utc=True)
    if kind == "month":
        return (dt.dt.month.to_numpy() - 1).astype(np.int32), {"cardinality": 12, "labels": MONTHS}
    if kind == "week":
        wk = dt.dt.isocalendar().week.to_numpy().astype(np.int32) - 1
        return wk, {"cardinality": 53, "labels": [f"W{w:02d}" for w in range(1, 54)]}
    if kind == "season":
        return ((dt.dt.month.to_numpy() % 12) // 3).astype(np.int32), {"cardinality": 4, "labels": SEASONS}
    if kind == "weekday_weekend":
        return (dt.dt.dayofweek.to_numpy() >= 5).astype(np.int32), {"cardinality": 2, "labels": ["weekday", "weekend"]}
    if kind == "weekday":
        return dt.dt.dayofweek.to_numpy().astype(np.int32), {
            "cardinality": 7, "labels": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}
    if kind == "hour":
        return dt.dt.hour.to_numpy().astype(np.int32), {"cardinality": 24, "labels": [f"{h:02d}h" for h in range(24)]}
    raise MrsError(f"unknown time mode kind {kind!r} (month, week, season, weekday_weekend, weekday, hour)")


def categorical_mode(values: np.ndarray, prefix: str = "") -> tuple[np.ndarray, dict]:
    """Mode column from a small categorical: sorted distinct values → 0..n-1."""
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values) and int(values.max()) - int(values.min()) < 1 << 20:
        lo = int(values.min())                            # small int range: O(N), no sort
        codes, used = compact_codes(values.astype(np.int64) - lo, int(values.max()) - lo + 1)
        uniq = used + lo
    else:
        uniq, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int32), {"cardinality": len(uniq), "labels": [f"{prefix}{u}" for u in uniq]}
