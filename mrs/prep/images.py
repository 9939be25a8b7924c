"""``mrs download-images``: fetch the image URLs a prepared dataset records (items ``image_url``).

Concurrent (a thread pool of urllib requests), with a timeout per request and retries with
exponential backoff on network errors, 5xx, 408 and 429 (other 4xx fail at once). Each image is
written to a temporary file and renamed, so a killed run leaves no half image; files already
present are skipped, so re-running resumes. Bytes that are not an image (an HTML error page) count
as a failure. At the end ``items.parquet`` gets ``image`` (path relative to the image root) for
every present file and the failures go to ``image_failures.json``, both written atomically.
"""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pandas as pd
from tqdm import tqdm

from mrs.errors import MrsError
from mrs.io import atomic_path, write_json_atomic
from mrs.prep.common import log

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM")   # jpeg, png, gif, webp, bmp


@dataclass
class DownloadConfig:
    dataset: str = ""                # prepared dataset directory (items.parquet with image_url)
    image_root: str = ""             # where images go; default: dataset.json image_root, else DATASET/images
    workers: int = 16                # concurrent requests (I/O bound: more than the CPU count is fine)
    timeout: float = 20.0            # seconds per request
    retries: int = 3                 # extra attempts after the first, for retryable failures
    backoff: float = 0.5             # seconds before the first retry, doubled each time
    max_bytes: int = 20_000_000      # refuse larger responses
    limit: int = 0                   # download at most N images (0: all), e.g. for a quick look
    user_agent: str = "mrs-download-images/0.1"


def local_name(item_id: str, url: str) -> str:
    """``ab/<safe id>.<ext>``: two-character buckets keep directories small; ext from the URL."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", item_id)
    ext = PurePosixPath(urlparse(url).path).suffix.lower()
    ext = ext if re.fullmatch(r"\.[a-z0-9]{2,5}", ext or "") else ".jpg"
    return f"{safe[-2:]}/{safe}{ext}"


def fetch(url: str, dest: Path, cfg: DownloadConfig) -> str | None:
    """Download ``url`` to ``dest`` atomically; ``None`` on success, else the last error."""
    error = "not attempted"
    for attempt in range(cfg.retries + 1):
        if attempt:
            time.sleep(cfg.backoff * 2 ** (attempt - 1))
        try:
            req = urllib.request.Request(url, headers={"User-Agent": cfg.user_agent})
            with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:
                data = resp.read(cfg.max_bytes + 1)
            if len(data) > cfg.max_bytes:
                return f"larger than max_bytes={cfg.max_bytes}"
            if not data.startswith(_MAGIC):
                return "response is not an image"
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest) as tmp:
                tmp.write_bytes(data)
            return None
        except urllib.error.HTTPError as e:
            error = f"HTTP {e.code}"
            if 400 <= e.code < 500 and e.code not in (408, 429):
                return error                              # permanent: do not retry
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            error = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
    return error


def download_images(cfg: DownloadConfig) -> dict:
    root = Path(cfg.dataset)
    items_path, meta_path = root / "items.parquet", root / "dataset.json"
    for p in (items_path, meta_path):
        if not p.is_file():
            raise MrsError(f"{p}: missing (is {root} a prepared dataset?)")
    items = pd.read_parquet(items_path)
    if "image_url" not in items:
        raise MrsError(f"{items_path}: no 'image_url' column: this dataset records no image URLs to download")
    meta = json.loads(meta_path.read_text())
    image_root = Path(cfg.image_root or meta.get("image_root") or "images")
    image_root_abs = image_root if image_root.is_absolute() else root / image_root

    todo, present = [], 0
    names: list[str | None] = []
    for item_id, url in zip(items["item_id"].astype(str), items["image_url"]):
        if not isinstance(url, str) or not url:
            names.append(None)
            continue
        name = local_name(item_id, url)
        names.append(name)
        if (image_root_abs / name).is_file():
            present += 1
        else:
            todo.append((item_id, url, name))
    if cfg.limit:
        todo = todo[: cfg.limit]
    failures: list[dict] = []
    ok = 0
    with ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        futures = {pool.submit(fetch, url, image_root_abs / name, cfg): (iid, url) for iid, url, name in todo}
        try:
            for fut in tqdm(as_completed(futures), total=len(futures), desc="images", unit=" img", mininterval=1.0):
                err = fut.result()
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
