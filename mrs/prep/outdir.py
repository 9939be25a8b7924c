"""``--out`` of ``mrs prepare`` and ``mrs synth``: checked before any input is read, replaced safely.

What is refused (one-line ``MrsError`` naming the path):

- an existing *file* at ``--out`` (it would have been renamed away and replaced by a directory);
- ``--out`` equal to, inside, or containing an input (``--out`` = ``--raw`` deleted the raw csvs);
- a non-empty directory that this command did not write (a prepared dataset for ``prepare``, a
  generated raw set for ``synth``): unrelated files are never deleted;
- a previous output without ``--overwrite``;
- a place that cannot be written (read-only filesystem, ``/sys``, under a file), tested *before*
  a multi-GB input is read rather than after.

With ``--overwrite`` the new output replaces the old one atomically (``mrs.io.atomic_dir``), and
every entry of the old directory that the command did not write itself is carried over:
``features/``, downloaded ``images/``, the kNN ``cache/`` and any file of the user's. Only
``--discard-derived`` (prepare) drops ``features/``, ``images/``, ``cache/`` and
``image_failures.json``; user files are carried even then.

A run hard-killed in the middle of the swap leaves the previous output, or the entries not yet
carried, in a hidden ``.<name>.old-*`` sibling; the next run puts them back (``recover_leftovers``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from mrs.errors import MrsError

log = logging.getLogger("mrs.prep")

PREPARED_FILES = ("dataset.json", "interactions.parquet", "items.parquet", "users.parquet")
# written by later phases into a prepared dataset: kept on --overwrite unless --discard-derived
DERIVED = ("features", "images", "cache", "image_failures.json")
PLANTED = ("planted.json", "planted.npz")
Owner = Callable[[Path], "set[str] | None"]  # what a command wrote in a directory (None: not its output)


def prepared_owned(path: Path) -> set[str] | None:
    """Entries ``mrs prepare`` wrote in ``path``, or ``None`` when it is not a prepared dataset."""
    meta = _json(path / "dataset.json")
    if not isinstance(meta, dict) or "source" not in meta or "items_checksum" not in meta:
        return None
    return set(PREPARED_FILES)


def synth_owned(path: Path) -> set[str] | None:
    """Entries ``mrs synth`` wrote in ``path`` (from its ``planted.json``), or ``None``."""
    planted = _json(path / "planted.json")
    if not isinstance(planted, dict) or not (path / "planted.npz").is_file():
        return None
    return synth_names(planted.get("job") or {})


def synth_names(job: dict) -> set[str]:
    """Top-level names one ``mrs synth`` job writes (``job``: the SynthJob as a dict)."""
    if job.get("format", "hm") == "hm":
        names = {"transactions_train.csv", "articles.csv", "customers.csv"}
    else:
        cat = job.get("category", "Synth_Fashion")
        names = {f"{cat}.jsonl", f"meta_{cat}.jsonl"}
    return names | {"images"} | set(PLANTED)


def check_out(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], *, command: str,
              owned_by: Owner, overwrite: bool, flag: str = "--overwrite",
              kept: str = "features/, images/ and other files") -> list[str]:
    """Validate ``out`` for ``command``; return the entries of an existing output to carry over
    (everything ``owned_by(out)`` does not name). ``flag``: the command's overwrite option;
    ``kept``: what the refusal says is kept on overwrite."""
    if not out:
        raise MrsError(f"{command}: missing required option 'out' (give --out DIR)")
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise MrsError(f"--out {p}: is an existing file, not a directory; refusing to replace it")
    _check_inputs(p, [Path(i) for i in inputs if i])
    recover_leftovers(p, owned_by)
    carry: list[str] = []
    if p.is_dir():
        entries = sorted(e.name for e in p.iterdir())
        if entries:
            owned = owned_by(p)
            if owned is None:
                shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                raise MrsError(f"--out {p}: a non-empty directory that `{command}` did not write "
                               f"(holds {shown}); choose a new or empty directory")
            if not overwrite:
                raise MrsError(f"--out {p}: already holds the output of an earlier `{command}`; "
                               f"pass {flag} to replace it ({kept} not written by `{command}` "
                               f"are kept)")
            carry = [e for e in entries if e not in owned]
    check_writable(p)
    return carry


def prepare_out(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], overwrite: bool,
                discard_derived: bool = False) -> list[str]:
    """``check_out`` for ``mrs prepare``; ``discard_derived`` drops features/, images/, cache/."""
    carry = check_out(out, inputs, command="mrs prepare", owned_by=prepared_owned, overwrite=overwrite)
    if discard_derived:
        dropped = [e for e in carry if e in DERIVED]
        if dropped:
            log.warning("--discard-derived: %s of %s will be deleted", ", ".join(dropped), out)
        carry = [e for e in carry if e not in DERIVED]
    return carry


def _check_inputs(out: Path, inputs: list[Path]) -> None:
    o = out.resolve()
    for i in inputs:
        r = i.resolve()
        if o == r or r in o.parents:
            raise MrsError(f"--out {out}: is {'the same as' if o == r else 'inside'} the input {i}; "
                           f"write the output elsewhere")
        if o in r.parents:
            raise MrsError(f"--out {out}: contains the input {i}; replacing it would delete the input")


def check_writable(out: Path) -> None:
    """Fail now, not after reading the input, when ``out`` cannot be created or written."""
    anc = out.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise MrsError(f"--out {out}: {anc} is a file, so nothing can be created under it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=out.parent)
        os.rmdir(probe)
    except OSError as e:
        raise MrsError(f"--out {out}: cannot write in {out.parent} ({e.strerror or e})") from None


def recover_leftovers(final: Path, owned_by: Owner) -> None:
    """Put back what a hard-killed swap left in a ``.<name>.old-*`` sibling (see ``atomic_dir``).

    Killed between its two renames, the whole previous output is there: it is renamed back.
    Killed while carrying entries over, the entries not yet moved (features/, images/, user
    files) are moved into ``final``; what the command wrote itself is stale and dropped.
    """
    parent = final.parent
    if not parent.is_dir():
        return
    for side in sorted(parent.glob(f".{final.name}.old-*")):
        if not side.is_dir():
            continue
        if not final.exists():
            os.replace(side, final)
            log.warning("%s: restored from %s, left by a killed run", final, side.name)
            continue
        owned = owned_by(side)
        if owned is None or not final.is_dir():
            continue  # not a complete previous output: leave it alone
        left = [e for e in side.iterdir() if e.name not in owned]
        for e in left:
            if (final / e.name).exists() or (final / e.name).is_symlink():
                log.warning("%s: %s is also in %s; keeping both", final, e.name, side)
                break
            os.rename(e, final / e.name)
            log.warning("%s: moved %s back from %s, left by a killed run", final, e.name, side.name)
        else:
            shutil.rmtree(side, ignore_errors=True)


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
