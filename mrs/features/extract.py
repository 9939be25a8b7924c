"""The extraction driver: resumable, shardable, batched; writes one store plus a JSON report.

Items are cut into fixed chunks of ``chunk_size`` rows. Each finished chunk is saved atomically
as ``features/.<store>.work/chunk-<start>.npz`` (features in the store dtype, present mask, a
status code per item, an input digest); a re-run after a kill skips finished chunks, and since
chunk boundaries and batches are fixed, it gives exactly the arrays of an uninterrupted run.
When all chunks are there the store is assembled and the work directory removed.

``shard="k/n"`` takes chunks ``[k*C/n, (k+1)*C/n)`` of the ``C`` chunks (chunk-aligned, so the
merged shards equal an unsharded run) and writes ``<store>.shard-k-of-n.<ext>``; ``merge_shards``
joins them. Under torchrun, ``--shard auto`` reads RANK / WORLD_SIZE.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mrs.errors import MrsError
from mrs.features.image import STATUS
from mrs.features.text import encoder_slug
from mrs.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class ExtractConfig:
    modality: Literal["text", "image", "attributes"] = "text"
    encoder: str = ""            # "" -> minilm (text) / efficientnet_lite0 (image) / svd (attributes)
    store: Literal["h5", "lmdb"] = "h5"
    dtype: Literal["float16", "float32"] = "float16"  # float16 halves disk and read time
    batch_size: int = 64         # items per encoder call
    chunk_size: int = 1024       # items per resumable chunk (a multiple of batch_size is best)
    max_length: int = 128        # text: tokens kept per item
    dim: int = 256               # text, encoder tfidf, and attributes: TruncatedSVD dimensions
    image_root: str | None = None  # image: default dataset.json["image_root"], else the dataset dir
    weights: str | None = None   # image: local checkpoint for a timm model
    pretrained: bool = True      # image: False gives a random-init model (tests only)
    workers: int = -1            # image decoding processes; -1 -> cores - 1 (at least 1)
    device: str = "auto"         # auto -> cuda when available (fp16 autocast there)
    shard: str | None = None     # "k/n" or "auto" (torchrun's RANK/WORLD_SIZE)
    out: str | None = None       # default <dataset>/features/<modality>-<encoder>.<store>

    def encoder_name(self) -> str:
        default = {"text": "minilm", "image": "efficientnet_lite0", "attributes": "svd"}
        return self.encoder or default[self.modality]


def parse_shard(shard: str | None) -> tuple[int, int]:
    if shard in (None, ""):
        return 0, 1
    if shard == "auto":
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    try:
        k, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise MrsError(f"--shard {shard!r}: expected k/n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= k < n):
        raise MrsError(f"--shard {shard!r}: need 0 <= k < n")
    return k, n


def store_path(dataset_dir: Path, cfg: ExtractConfig, k: int = 0, n: int = 1) -> Path:
    if cfg.out:
        base = Path(cfg.out)
        stem, suffix = base.name.removesuffix(base.suffix), base.suffix or f".{cfg.store}"
        base = base.parent / stem
    else:
        base, suffix = dataset_dir / "features" / f"{cfg.modality}-{encoder_slug(cfg.encoder_name())}", f".{cfg.store}"
    shard = f".shard-{k}-of-{n}" if n > 1 else ""
    return base.parent / f"{base.name}{shard}{suffix}"


def _chunks(n_items: int, size: int, k: int, n: int) -> list[tuple[int, int]]:
    allc = [(s, min(s + size, n_items)) for s in range(0, n_items, size)]
    lo, hi = k * len(allc) // n, (k + 1) * len(allc) // n
    return allc[lo:hi]


def extract(dataset_dir: str | os.PathLike, cfg: ExtractConfig, progress: bool = True,
            encoder=None) -> dict:
    """Run (or resume) one extraction; return the report (also saved as ``<store>.report.json``).

    ``encoder`` reuses an already built ``TextEncoder`` / ``ImageEncoder`` (one load for many
    datasets, or benchmarks); by default it is built from ``cfg``.
    """
    import torch

    root = Path(dataset_dir)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise MrsError(f"{meta_path}: missing (is {root} a prepared dataset?)")
    meta = json.loads(meta_path.read_text())
    if not (root / "items.parquet").is_file():
        raise MrsError(f"{root / 'items.parquet'}: missing (is {root} a prepared dataset?)")
    items = pd.read_parquet(root / "items.parquet")
    col = cfg.modality  # the items.parquet column each modality reads
    for c in ("item_id", col):
        if c not in items:
            hint = "; prepare with `mrs prepare amazon2014 --attributes FILE`" if c == "attributes" else ""
            raise MrsError(f"{root / 'items.parquet'}: no {c!r} column (needed for {cfg.modality} features){hint}")
    from mrs.data.prepared import items_checksum

    ids = items["item_id"].astype(str).tolist()
    items_ck = meta.get("items_checksum") or items_checksum(ids)
    k, n = parse_shard(cfg.shard)
    chunks = _chunks(len(ids), cfg.chunk_size, k, n)
    out = store_path(root, cfg, k, n)
    if cfg.batch_size < 1 or cfg.chunk_size < 1:
        raise MrsError("batch_size and chunk_size must be >= 1")
    if cfg.modality == "image":  # checked before the (slow) encoder load
        image_root = cfg.image_root or meta.get("image_root") or str(root)
        if not Path(image_root).is_dir():
            raise MrsError(f"--image-root {image_root}: not a directory")

    if cfg.modality == "attributes" or (cfg.modality == "text" and cfg.encoder == "tfidf"):
        # a corpus fit, not a per-item encoder
        from mrs.features.attributes import extract_attributes
        from mrs.features.tfidf import extract_tfidf
        if cfg.dim < 1:
            raise MrsError(f"--dim: must be >= 1, got {cfg.dim}")
        fit = extract_attributes if cfg.modality == "attributes" else extract_tfidf
        return fit(root, cfg, items, items_ck, out)
    if cfg.device == "auto" and not torch.cuda.is_available():
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    from mrs.device import resolve_device

    device = resolve_device(cfg.device, key="device")
    enc = (encoder if encoder is not None else _build_encoder(cfg, device)).to(device).eval()
    fingerprint = {"config": {**asdict(cfg), "out": None, "shard": None, "workers": None, "device": None},
                   "encoder_version": enc.version, "items_checksum": items_ck, "chunks": chunks,
                   "device_type": device.type}
    work = out.parent / f".{out.name}.work"
    done = _resume_state(work, fingerprint)
    todo = [c for c in chunks if c[0] not in done]
    n_range = sum(e - s for s, e in chunks)
    if done:
        log.info("resuming %s: %d of %d chunks already done", out.name, len(chunks) - len(todo), len(chunks))

    from tqdm.auto import tqdm

    bar = tqdm(total=n_range, initial=n_range - sum(e - s for s, e in todo), unit="item",
               desc=f"{cfg.modality}:{cfg.encoder_name()}", disable=not progress, smoothing=0.1)
    runner = _encode_text if cfg.modality == "text" else _encode_images
    chunks_out = runner(enc, items, todo, cfg, root, meta, device, bar.update)  # bar ticks per batch
    for s, e, feats, status, digest in chunks_out:
        with atomic_path(work / f"chunk-{s:010d}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, features=feats.astype(cfg.dtype), status=status.astype(np.int8),
                         digest=np.array(digest))
    bar.close()
    return _assemble(out, work, ids, chunks, enc, cfg, items_ck, k, n)


def _build_encoder(cfg: ExtractConfig, device):
    if cfg.modality == "text":
        from mrs.features.text import TextEncoder

        enc = TextEncoder(cfg.encoder_name(), max_length=cfg.max_length)
    else:
        from mrs.features.image import ImageEncoder

        enc = ImageEncoder(cfg.encoder_name(), weights=cfg.weights, pretrained=cfg.pretrained)
    return enc.to(device).eval()


def _resume_state(work: Path, fingerprint: dict) -> set[int]:
    """Starts of finished chunks in ``work``; a work dir from other settings is discarded."""
    fp_path = work / "run.json"
    fp = json.loads(json.dumps(fingerprint))  # tuples -> lists, as read back from disk
    if work.is_dir():
        try:
            old = json.loads(fp_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != fp:
            log.warning("%s: left by a run with other settings; starting over", work)
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not fp_path.is_file():
        write_json_atomic(fp_path, fp)
    return {int(p.stem.split("-")[1]) for p in work.glob("chunk-*.npz")}


def _texts_ok(texts: list) -> tuple[list[str], np.ndarray]:
    clean = ["" if t is None or (isinstance(t, float) and t != t) else str(t) for t in texts]
    ok = np.array([bool(t.strip()) for t in clean])
    return clean, ok


def _encode_text(enc, items: pd.DataFrame, todo, cfg: ExtractConfig, root, meta, device, tick):
    import torch

    texts_all = items["text"].tolist()
    for s, e in todo:
        texts, ok = _texts_ok(texts_all[s:e])
        feats = np.zeros((e - s, enc.dim), dtype=np.float32)
        idx = np.flatnonzero(ok)
        # Length-sorted batches pad less; the order is fixed, so resumed runs stay identical.
        idx = idx[np.argsort([-len(texts[j]) for j in idx], kind="stable")]
        for b in range(0, len(idx), cfg.batch_size):
            sel = idx[b:b + cfg.batch_size]
            tok = {k: v.to(device) for k, v in enc.tokenize([texts[j] for j in sel]).items()}
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                feats[sel] = enc(**tok).cpu().numpy()
            tick(len(sel))
        tick(int((~ok).sum()))
        status = np.where(ok, STATUS.index("ok"), STATUS.index("empty_text"))
        digest = hashlib.sha256("\x00".join(t if o else "" for t, o in zip(texts, ok)).encode()).hexdigest()
        yield s, e, feats, status, digest


def _encode_images(enc, items: pd.DataFrame, todo, cfg: ExtractConfig, root: Path, meta, device, tick):
    import torch
    from torch.utils.data import DataLoader

    from mrs.features.image import ImageItems, path_status, worker_init

    image_root = cfg.image_root or meta.get("image_root") or str(root)
    if not Path(image_root).is_dir():
        raise MrsError(f"--image-root {image_root}: not a directory")
    paths = items["image"].tolist()
    pre = np.array([path_status(p) for p in paths], dtype=np.int8)  # no path / URL: known without I/O
    ds = ImageItems(paths, image_root, enc.transform, tuple(enc.data_config["input_size"]))
    # Only items with a file to read go to the workers. Batches never straddle a chunk, so each
    # chunk's batches are the same on every run (and a resumed run matches an uninterrupted one).
    per_chunk = [np.flatnonzero(pre[s:e] == 0) + s for s, e in todo]
    batches = [idx[b:b + cfg.batch_size].tolist() for idx in per_chunk for b in range(0, len(idx), cfg.batch_size)]
    workers = cfg.workers if cfg.workers >= 0 else max(1, (os.cpu_count() or 2) - 1)
    loader = DataLoader(ds, batch_sampler=batches, num_workers=workers if batches else 0,
                        worker_init_fn=worker_init, pin_memory=device.type == "cuda",
                        prefetch_factor=4 if workers and batches else None)
    it = iter(loader)
    for (s, e), idx in zip(todo, per_chunk):
        feats = np.zeros((e - s, enc.dim), dtype=np.float32)  # (C, d)
        status = pre[s:e].copy()
        digests = [""] * (e - s)
        tick(int(e - s - len(idx)))
        for b in range(0, len(idx), cfg.batch_size):
            x, st, dg = next(it)  # (B, 3, H, W), (B,), B digests
            rows = idx[b:b + cfg.batch_size] - s
            ok = st.numpy() == 0
            if ok.any():
                with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                    feats[rows[ok]] = enc(x[torch.from_numpy(ok)].to(device, non_blocking=True)).cpu().numpy()
            status[rows] = st.numpy()
            for r, d in zip(rows, dg):
                digests[r] = d
            tick(len(rows))
        yield s, e, feats, status, hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _assemble(out: Path, work: Path, ids: list[str], chunks, enc, cfg: ExtractConfig, items_ck: str,
              k: int, n: int) -> dict:
    from mrs.features.store import open_writer

    lo, hi = (chunks[0][0], chunks[-1][1]) if chunks else (0, 0)
    meta = {"modality": cfg.modality, "encoder": cfg.encoder_name(), "encoder_version": enc.version,
            "normalisation": "l2", "items_checksum": items_ck,
            "config": json.dumps({kk: v for kk, v in asdict(cfg).items() if kk not in ("out", "workers", "device", "shard")}),
            "shard": f"{k}/{n}" if n > 1 else "", "item_range": json.dumps([lo, hi]), "n_items_total": len(ids)}
    writer = open_writer(out, ids[lo:hi], enc.dim, meta, dtype=cfg.dtype)
    statuses, digests = [], []
    try:
        for s, e in chunks:
            with np.load(work / f"chunk-{s:010d}.npz") as z:
                st = z["status"]
                writer.write(s - lo, z["features"], st == 0)
                statuses.append(st)
                digests.append(str(z["digest"]))
    except BaseException:
        writer.abort()
        raise
    status = np.concatenate(statuses) if statuses else np.zeros(0, np.int8)
    report = build_report(out, ids[lo:hi], status, cfg)
    input_ck = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    writer.close({"input_checksum": input_ck, "chunk_digests": json.dumps(digests),
                  "n_present": report["present"]})
    write_json_atomic(report_path(out), report)
    shutil.rmtree(work, ignore_errors=True)
    print_report(report)
    return report


def report_path(store: Path) -> Path:
    return store.parent / f"{store.name}.report.json"


def build_report(out: Path, ids: list[str], status: np.ndarray, cfg: ExtractConfig, first: int = 10) -> dict:
    counts = np.bincount(status.astype(np.int64), minlength=len(STATUS)) if len(status) else np.zeros(len(STATUS), int)
    problems = {STATUS[c]: {"count": int(counts[c]), "first_ids": [ids[j] for j in np.flatnonzero(status == c)[:first]]}
                for c in range(1, len(STATUS)) if counts[c]}
    return {"store": str(out), "modality": cfg.modality, "encoder": cfg.encoder_name(), "items": int(len(status)),
            "present": int(counts[0]), "missing": int(len(status) - counts[0]), "problems": problems}


def print_report(report: dict) -> None:
    print(f"{report['store']}: {report['items']} items, {report['present']} present, {report['missing']} missing")
    for kind, v in report["problems"].items():
        print(f"  {kind}: {v['count']} (first: {', '.join(v['first_ids'][:5])})")
