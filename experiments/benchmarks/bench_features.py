"""Phase-1 speed: the extraction pipeline against the bare encoder forward, and store read time.

    nice -n 10 .venv/bin/python experiments/benchmarks/bench_features.py [--n-text 512] [--n-images 192]

- text:  ``extract()`` end to end (tokenise, encode, chunk files, store + report) vs the same
         encoder's forward alone on the same batches, pre-tokenised.
- image: ``extract()`` end to end (read + decode + resize in DataLoader workers, encode, store) vs
         the forward alone on pre-decoded tensors, in the same batches.
  Ratio = pipeline items/s / bare items/s (target >= 0.85). Pairs are interleaved and the best of
  ``--repeats`` is kept for each, so load from other processes hits both alike.
- read:  ``read_store`` of ``--read-rows`` x ``--dim`` float16 features from HDF5 and LMDB
         (target <= 1 s), plus ``load_features`` (alignment check + float32) for HDF5.
Inputs: real H&M texts/JPEGs from ../shared/data when present, else generated ones.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mrs.data.prepared import items_checksum, write_prepared  # noqa: E402
from mrs.features import load_features, read_store, write_store  # noqa: E402
from mrs.features.extract import ExtractConfig, extract  # noqa: E402

SHARED = Path(os.environ.get("MRS_SHARED_DATA", REPO.parent / "shared" / "data"))


def prepared(root: Path, texts=None, images=None, image_root=None, n=None) -> Path:
    n = n or len(texts if texts is not None else images)
    items = pd.DataFrame({"item": np.arange(n), "item_id": [f"i{k}" for k in range(n)],
                          "text": texts if texts is not None else [""] * n,
                          "image": images if images is not None else [None] * n})
    inter = pd.DataFrame({"user": np.zeros(n, int), "item": np.arange(n), "split": np.zeros(n, int)})
    return write_prepared(root, inter, items, pd.DataFrame({"user": [0], "user_id": ["u"]}), name="bench",
                          source="bench", modes={}, params={}, input_checksum="-",
                          extra={"image_root": str(image_root)} if image_root else None)


def hm_texts(n: int) -> list[str]:
    f = SHARED / "hm" / "articles.csv"
    if f.is_file():
        a = pd.read_csv(f, dtype={"article_id": str}).dropna(subset=["detail_desc"])
        t = (a["prod_name"] + ". " + a["product_type_name"] + ". " + a["detail_desc"]).tolist()
        return (t * (n // len(t) + 1))[:n]
    rng = np.random.default_rng(0)
    words = "soft cotton jersey top with a round neck and long sleeves in a relaxed fit dress".split()
    return [" ".join(rng.choice(words, rng.integers(8, 60))) for _ in range(n)]


def hm_images(n: int, tmp: Path) -> tuple[list[str], Path]:
    root = SHARED / "hm" / "images"
    files = sorted(root.glob("*/*.jpg"))[:n] if root.is_dir() else []
    if len(files) >= n:
        return [str(f.relative_to(root)) for f in files], root
    from PIL import Image

    rng = np.random.default_rng(0)
    out = tmp / "img"
    out.mkdir()
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (540, 360, 3), dtype=np.uint8)).save(out / f"{k}.jpg", quality=90)
    return [f"{k}.jpg" for k in range(n)], out


def bench_text(tmp: Path, n: int, repeats: int, device: str) -> None:
    import torch

    from mrs.features.text import TextEncoder

    cfg = ExtractConfig(modality="text", batch_size=64, chunk_size=1024, device=device)
    dev = torch.device(device)
    texts = hm_texts(n)
    ds = prepared(tmp / "text", texts=texts)
    enc = TextEncoder("minilm").to(dev).eval()
    torch.set_num_threads(os.cpu_count() or 1)
    # Same batches as the pipeline: length-sorted within each chunk.
    batches = []
    for s in range(0, n, cfg.chunk_size):
        idx = sorted(range(s, min(s + cfg.chunk_size, n)), key=lambda j: -len(texts[j]))
        batches += [enc.tokenize([texts[j] for j in idx[b:b + cfg.batch_size]]) for b in range(0, len(idx), cfg.batch_size)]
    bare, pipe = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for tok in batches:
            with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                enc(**{k: v.to(dev) for k, v in tok.items()}).cpu()
        bare.append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        extract(ds, cfg, progress=False, encoder=enc)
        pipe.append(n / (time.perf_counter() - t))
    print(f"text  minilm        n={n}: bare forward {max(bare):7.1f} items/s | pipeline {max(pipe):7.1f} items/s "
          f"| ratio {max(pipe) / max(bare):.2f}  (target >= 0.85)")


def bench_image(tmp: Path, n: int, repeats: int, encoder: str, workers: int, device: str) -> None:
    import torch

    from mrs.features.image import ImageEncoder, load_rgb

    cfg = ExtractConfig(modality="image", encoder=encoder, batch_size=32, chunk_size=1024, workers=workers,
                        device=device)
    dev = torch.device(device)
    images, root = hm_images(n, tmp)
    ds = prepared(tmp / "image", images=images, image_root=root)
    enc = ImageEncoder(encoder).to(dev).eval()
    torch.set_num_threads(os.cpu_count() or 1)
    x = torch.stack([enc.transform(load_rgb((root / p).read_bytes())) for p in images])  # (n, 3, H, W)
    bare, pipe = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in range(0, n, cfg.batch_size):
            with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
                enc(x[b:b + cfg.batch_size].to(dev)).cpu()
        bare.append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        extract(ds, cfg, progress=False, encoder=enc)
        pipe.append(n / (time.perf_counter() - t))
    w = cfg.workers if cfg.workers >= 0 else max(1, (os.cpu_count() or 2) - 1)
    print(f"image {encoder} n={n} ({w} decode worker(s)): bare forward {max(bare):7.1f} items/s | pipeline "
          f"{max(pipe):7.1f} items/s | ratio {max(pipe) / max(bare):.2f}  (target >= 0.85)")


def bench_read(tmp: Path, rows: int, dim: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((rows, dim), dtype=np.float32).astype(np.float16)
    present = np.ones(rows, bool)
    ids = [f"i{k}" for k in range(rows)]
    ds = prepared(tmp / "read", texts=[""] * rows, n=rows)
    meta = {"items_checksum": items_checksum(ids)}
    for fmt in ("h5", "lmdb"):
        t = time.perf_counter()
        path = write_store(ds / "features" / f"bench-x.{fmt}", ids, feats, present, meta)
        wt = time.perf_counter() - t
        best = min(_timed(lambda: read_store(path)) for _ in range(repeats))
        got = read_store(path)[1]
        assert np.array_equal(got, feats)
        print(f"read  {fmt:4s} {rows} x {dim} float16 ({feats.nbytes / 2**20:.0f} MiB): read_store {best:.3f} s "
              f"(target <= 1 s); written in {wt:.1f} s")
    best = min(_timed(lambda: load_features(ds, "bench-x.h5")) for _ in range(repeats))
    print(f"read  h5   load_features (checksum + float32 tensor): {best:.3f} s")


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-text", type=int, default=512)
    ap.add_argument("--n-images", type=int, default=192)
    ap.add_argument("--image-encoder", default="efficientnet_lite0")
    ap.add_argument("--workers", type=int, default=-1)
    ap.add_argument("--read-rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (the 2-core target) or cuda")
    ap.add_argument("--only", choices=["text", "image", "read"], nargs="*", default=["text", "image", "read"])
    args = ap.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} device={args.device} "
          f"data={'H&M sample' if SHARED.is_dir() else 'generated'}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "read" in args.only:
            bench_read(tmp, args.read_rows, args.dim, args.repeats + 1)
        if "text" in args.only:
            bench_text(tmp, args.n_text, args.repeats, args.device)
        if "image" in args.only:
            bench_image(tmp, args.n_images, args.repeats, args.image_encoder, args.workers, args.device)


if __name__ == "__main__":
    main()
