"""``mrs features text|image|attributes|merge|list``: phase 1 from the command line."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mrs.errors import MrsError


def register(subparsers) -> None:
    p = subparsers.add_parser("features", help="extract text / image features into HDF5 or LMDB stores")
    sub = p.add_subparsers(dest="features_command", metavar="{text,image,attributes,merge,list}")
    for modality in ("text", "image"):
        q = sub.add_parser(modality, help=f"extract {modality} features of a prepared dataset")
        q.add_argument("--dataset", required=True, help="prepared dataset directory")
        q.add_argument("--encoder", default="", help="minilm (default), tfidf (TF-IDF + TruncatedSVD), or a BERT-family model dir / HF cache id"
                       if modality == "text" else "efficientnet_lite0 (default) or any timm model name")
        q.add_argument("--store", choices=["h5", "lmdb"], default="h5")
        q.add_argument("--dtype", choices=["float16", "float32"], default="float16")
        q.add_argument("--batch-size", type=int, default=64)
        q.add_argument("--chunk-size", type=int, default=1024, help="items per resumable chunk")
        q.add_argument("--shard", default=None, help="k/n: extract only shard k of n (or 'auto' under torchrun)")
        q.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda:0, ...")
        q.add_argument("--out", default=None, help="store path (default <dataset>/features/<modality>-<encoder>.<store>)")
        q.add_argument("--no-progress", action="store_true")
        if modality == "text":
            q.add_argument("--max-length", type=int, default=128, help="tokens kept per item")
            q.add_argument("--dim", type=int, default=256, help="tfidf: SVD dimensions (fewer when the TF-IDF matrix has a lower rank: warned)")
        else:
            q.add_argument("--image-root", default=None, help="default: dataset.json image_root, else the dataset dir")
            q.add_argument("--weights", default=None, help="local checkpoint file for a timm model")
            q.add_argument("--workers", type=int, default=-1, help="decoding processes (-1: cores - 1)")
        q.set_defaults(func=_extract, modality=modality)
    a = sub.add_parser("attributes", help="multi-hot item attributes -> TruncatedSVD (features/attributes-svd.h5)")
    a.add_argument("--dataset", required=True, help="prepared dataset with an 'attributes' item column "
                   "(mrs prepare amazon2014 --attributes FILE)")
    a.add_argument("--dim", type=int, default=64, help="SVD dimensions (fewer when the multi-hot matrix "
                   "has a lower rank: warned)")
    a.add_argument("--store", choices=["h5", "lmdb"], default="h5")
    a.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    a.add_argument("--out", default=None, help="store path (default <dataset>/features/attributes-svd.<store>)")
    a.set_defaults(func=_extract_attributes)
    m = sub.add_parser("merge", help="join shard stores into one store")
    m.add_argument("shards", nargs="*", help="shard stores (or use --dataset and --name)")
    m.add_argument("--dataset", default=None)
    m.add_argument("--name", default=None, help="store name, e.g. text-minilm")
    m.add_argument("--out", default=None)
    m.set_defaults(func=_merge)
    ls = sub.add_parser("list", help="list a dataset's feature stores")
    ls.add_argument("--dataset", required=True)
    ls.set_defaults(func=_list)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def _extract(args: argparse.Namespace) -> int:
    from mrs.features.extract import ExtractConfig, extract

    cfg = ExtractConfig(modality=args.modality, encoder=args.encoder, store=args.store, dtype=args.dtype,
                        batch_size=args.batch_size, chunk_size=args.chunk_size, shard=args.shard,
                        device=args.device, out=args.out,
                        **({"max_length": args.max_length, "dim": args.dim} if args.modality == "text" else
                           {"image_root": args.image_root, "weights": args.weights, "workers": args.workers}))
    extract(args.dataset, cfg, progress=not args.no_progress)
    return 0


def _extract_attributes(args: argparse.Namespace) -> int:
    from mrs.features.extract import ExtractConfig, extract

    extract(args.dataset, ExtractConfig(modality="attributes", dim=args.dim, store=args.store,
                                        dtype=args.dtype, out=args.out), progress=False)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from mrs.features.merge import find_shards, merge_shards

    shards = [Path(s) for s in args.shards]
    if not shards:
        if not (args.dataset and args.name):
            raise MrsError("merge: give shard paths, or --dataset DIR --name STORE_NAME")
        shards = find_shards(Path(args.dataset) / "features", args.name)
    out = merge_shards(shards, Path(args.out) if args.out else None)
    print(f"merged {len(shards)} shards into {out}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from mrs.features.reader import list_features

    for row in list_features(args.dataset):
        print(json.dumps(row))
    return 0
