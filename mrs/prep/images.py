"""``mrs download-images``: fetch the image URLs a prepared dataset records (items ``image_url``).

Concurrent (a thread pool of bounded requests, :mod:`mrs.prep.fetch`: http(s) only, ``timeout``
bounds each whole request, ``max_bytes`` its body) with retries and exponential backoff on network
errors, timeouts, truncated bodies, 5xx, 408 and 429 (other 4xx fail at once). Each image is
checked (complete, decodes) and written to a temporary file and renamed, so a killed run leaves no
half image; files already present are skipped, so re-running resumes. Bytes that are not a whole
image (an HTML error page, a cut body) count as a failure, as does any error of one URL: the run
goes on. Every image path must resolve inside the image root, and every item id has its own
file (:func:`local_name`). At the end ``items.parquet`` gets ``image`` (path relative to the image root) for
every present file and the failures go to ``image_failures.json``, both written atomically.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd
from tqdm import tqdm

from mrs.errors import MrsError
from mrs.io import atomic_path, write_json_atomic
from mrs.prep.common import log
from mrs.prep.fetch import FetchError, http_get

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM")   # jpeg, png, gif, webp, bmp


@dataclass
class DownloadConfig:
    dataset: str = ""                # prepared dataset directory (items.parquet with image_url)
    image_root: str = ""             # where images go; default: dataset.json image_root, else DATASET/images
    workers: int = 16                # concurrent requests (I/O bound: more than the CPU count is fine)
    timeout: float = 20.0            # seconds per request, in total (connect + redirects + body)
    retries: int = 3                 # extra attempts after the first, for retryable failures
    backoff: float = 0.5             # seconds before the first retry, doubled each time
    max_bytes: int = 20_000_000      # refuse larger responses
    limit: int = 0                   # download at most N images (0: all), e.g. for a quick look
    user_agent: str = "mrs-download-images/0.1"


def local_name(item_id: str, url: str) -> str:
    """``ab/<safe id>.<ext>``: two-character buckets keep directories small; ext from the URL.

    Injective over item ids: an id made only of ``[A-Za-z0-9._-]`` is its own file name (so files
    of earlier runs stay usable), any other id gets ``~`` and a hash of the id appended, a
    character no unescaped name has, so ``shirt/red`` and ``shirt_red`` never share a picture.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", item_id)
    bucket = safe[-2:] if safe[-2:].strip(".") else "_" * len(safe[-2:])  # never "." or ".."
    if safe != item_id:
        safe += "~" + hashlib.sha256(item_id.encode()).hexdigest()[:12]
    try:
        ext = PurePosixPath(urlparse(url).path).suffix.lower()
    except ValueError:  # a malformed URL (``http://[::1``): fetching it fails and is reported
        ext = ""
    ext = ext if re.fullmatch(r"\.[a-z0-9]{2,5}", ext or "") else ".jpg"
    return f"{bucket}/{safe}{ext}"


def shared_old_names(item_ids: list[str], urls: list) -> set[str]:
    """Names that several ids shared before :func:`local_name` was injective (``shirt/red`` and
    ``shirt_red`` both ``ed/shirt_red.jpg``): which item's picture such a file holds is unknown,
    so the id that still uses the name fetches it again."""
    seen: dict[str, int] = {}
    for item_id, url in zip(item_ids, urls):
        if isinstance(url, str) and url:
            name = local_name(re.sub(r"[^A-Za-z0-9._-]", "_", item_id), url)
            seen[name] = seen.get(name, 0) + 1
    return {n for n, c in seen.items() if c > 1}


def fetch(url: str, dest: Path, cfg: DownloadConfig) -> str | None:
    """Download ``url`` to ``dest`` atomically; ``None`` on success, else the last error.

    Only a complete body that decodes as an image is renamed into place: a truncated or garbled
    response leaves nothing, so the next run fetches it again.
    """
    error = "not attempted"
    for attempt in range(cfg.retries + 1):
        if attempt:
            time.sleep(cfg.backoff * 2 ** (attempt - 1))
        try:
            data = http_get(url, cfg.timeout, cfg.max_bytes, cfg.user_agent)
        except FetchError as e:
            error = str(e)
            if not e.retryable:
                return error
            continue
        if not data.startswith(_MAGIC):
            return "response is not an image"
        bad = undecodable(data)
        if bad:
            return f"response is not a complete image ({bad})"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
        return None
    return error


def undecodable(data: bytes) -> str | None:
    """Why ``data`` does not decode as a whole image (``None`` when it does)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a full decode: a truncated file raises here (LOAD_TRUNCATED_IMAGES is off)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... on bad data
        msg = str(e).splitlines()[0] if str(e) else ""
        return f"{type(e).__name__}: {msg[:120]}"
    return None


def inside(root: Path, name: str) -> bool:
    """Whether ``root / name`` resolves inside ``root`` (links and ``..`` followed)."""
    r = root.resolve()
    return (r / name).resolve().is_relative_to(r)


def download_images(cfg: DownloadConfig) -> dict:
    root = Path(cfg.dataset)
    items_path, meta_path = root / "items.parquet", root / "dataset.json"
    for p in (items_path, meta_path):
        if not p.is_file():
            raise MrsError(f"{p}: missing (is {root} a prepared dataset?)")
    items = pd.read_parquet(items_path)
    if "image_url" not in items:
        raise MrsError(f"{items_path}: no 'image_url' column: this dataset records no image URLs to download")
    if cfg.timeout <= 0 or cfg.retries < 0 or cfg.max_bytes < 1:
        raise MrsError(f"download-images: need timeout > 0, retries >= 0 and max_bytes >= 1 "
                       f"(got {cfg.timeout}, {cfg.retries}, {cfg.max_bytes})")
    meta = json.loads(meta_path.read_text())
    image_root = Path(cfg.image_root or meta.get("image_root") or "images")
    image_root_abs = image_root if image_root.is_absolute() else root / image_root

    todo, present = [], 0
    names: list[str | None] = []
    failures: list[dict] = []
    ids = items["item_id"].astype(str).tolist()
    refetch = shared_old_names(ids, items["image_url"].tolist())
    for item_id, url in zip(ids, items["image_url"]):
        if not isinstance(url, str) or not url:
            names.append(None)
            continue
        name = local_name(item_id, url)
        if not inside(image_root_abs, name):  # checked on the resolved path, not the string
            names.append(None)
            failures.append({"item_id": item_id, "url": url, "error": f"image path {name!r} is outside "
                             f"{image_root_abs}"})
            continue
        names.append(name)
        if (image_root_abs / name).is_file() and name not in refetch:
            present += 1
        else:
            todo.append((item_id, url, name))
    if cfg.limit:
        todo = todo[: cfg.limit]
    ok = 0
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        futures = {pool.submit(fetch, url, image_root_abs / name, cfg): (iid, url) for iid, url, name in todo}
        try:
            for fut in tqdm(as_completed(futures), total=len(futures), desc="images", unit=" img", mininterval=1.0):
                try:
                    err = fut.result()
                except Exception as e:  # never a traceback for one URL: report it, go on
                    err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                if err is None:
                    ok += 1
                else:
                    iid, url = futures[fut]
                    failures.append({"item_id": iid, "url": url, "error": err})
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    # Record what is on disk now (also files from earlier runs), atomically, after all downloads.
    items["image"] = [n if n is not None and (image_root_abs / n).is_file() else None for n in names]
    with atomic_path(items_path) as tmp:
        items.to_parquet(tmp, index=False)
    if meta.get("image_root") != str(image_root):
        meta["image_root"] = str(image_root)
        write_json_atomic(meta_path, meta)
    report_path = root / "image_failures.json"
    write_json_atomic(report_path, {"failed": len(failures), "failures": sorted(failures, key=lambda f: f["item_id"])})
    log.info("images: %d downloaded, %d already present, %d failed", ok, present, len(failures))
    return {"ok": ok, "present": present, "failed": len(failures), "report_path": str(report_path),
            "image_root": str(image_root_abs)}
