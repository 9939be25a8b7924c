"""How concentrated is the item kNN graph's in-degree on the H&M sample? (issue 11, point 1)

    python experiments/hm_sample/knn_hubs.py --dataset /tmp/hm/prepared [--features text-minilm ...]

Prints, for the earlier graph (one graph over the concatenated modalities, self excluded, with
``data.fill=mean`` rows treated as content) and FREEDOM's graph as published with the present
masks (per modality, self included, no edges for missing content): the share of all edges that
point into the 10 items with the highest in-degree, and the largest in-degree.
"""
from __future__ import annotations

import argparse

import torch

from mrs import graph
from mrs.data.prepared import load_prepared
from mrs.models.encoders.freedom import modality_weights
from mrs.train.data import load_feature_stores_with_present


def stats(adj: torch.Tensor, exclude_self: bool = True) -> str:
    coo = adj.to_sparse_coo().coalesce()
    row, col = coo.indices()
    keep = row != col if exclude_self else torch.ones_like(row, dtype=torch.bool)
    indeg = torch.bincount(col[keep], minlength=adj.shape[0])
    top = indeg.topk(10).values.sum().item()
    return (f"{int(keep.sum()):,} edges (self-loops not counted), top-10 items receive {top / max(int(keep.sum()), 1):.1%}, "
            f"max in-degree {int(indeg.max())}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--features", nargs="+", default=["text-minilm"])
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    ds = load_prepared(args.dataset)
    feats, present = load_feature_stores_with_present(ds, args.features, "mean")
    feats = {m: torch.nn.functional.normalize(x, dim=1) for m, x in feats.items()}
    for m, p in present.items():
        print(f"{m}: {int(p.sum()):,} of {ds.n_items:,} items have content ({1 - p.float().mean():.1%} missing)")
    old = graph.knn_adj(torch.cat(list(feats.values()), 1), args.k)  # mean-filled rows count as content
    print(f"earlier graph (concat, self excluded, fill=mean): {stats(old)}")
    new = graph.freedom_knn_adj(feats, present, args.k, modality_weights(list(feats), 0.1))
    print(f"FREEDOM as published, present masks:            {stats(new)}")


if __name__ == "__main__":
    main()
