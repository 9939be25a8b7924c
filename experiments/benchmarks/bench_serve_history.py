"""Serving a sequential user encoder: export a trained sasrec/bert4rec run, then, in one process
with one torch thread (as ``mrs serve``), check and time requests by ``user`` against requests by
the same user's raw-id ``history``:

- agreement: for ``--check`` users, the top-k list of ``{"history": all of the user's items in
  time order}`` equals that of ``{"user": id}`` (whose row is the state computed at export);
- latency: p50 / p99 of ``recommend`` by ``user`` (the baseline) and by ``history``, for the
  exact and the folded-ANN path, and the ratio history / user per path.

    python experiments/benchmarks/bench_serve_history.py RUN_DIR --out /tmp/model --requests 500
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="model directory to (re)write")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--check", type=int, default=500, help="users whose two lists are compared")
    p.add_argument("-k", type=int, default=10)
    a = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from mrs.data.prepared import load_prepared
    from mrs.serve.export import export_run
    from mrs.serve.service import RecommendService
    from mrs.train.config import load_train_config
    from mrs.train.sequences import time_order

    print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus at the start")
    if a.out.exists():
        shutil.rmtree(a.out)
    t0 = time.perf_counter()
    export_run(a.run_dir, a.out)
    print(f"export: {time.perf_counter() - t0:.1f} s")
    cfg = load_train_config(a.run_dir / "config.yaml")
    ds = load_prepared(cfg.data.dir)
    order = time_order(ds, cfg.model.seq_ties, cfg.train.seed)
    inter = ds.interactions
    u_sorted = inter["user"].to_numpy()[order]
    i_sorted = inter["item"].to_numpy()[order]
    starts = np.searchsorted(u_sorted, np.arange(ds.n_users + 1))
    ids = ds.items.sort_values("item")["item_id"].astype(str).to_numpy()
    uids = ds.users.sort_values("user")["user_id"].astype(str).to_numpy()

    def history(u: int) -> list[str]:
        return list(ids[i_sorted[starts[u]:starts[u + 1]]])

    svc = RecommendService.open(a.out, retrieval="folded")
    rng = np.random.default_rng(0)
    users = rng.choice(ds.n_users, min(a.check, ds.n_users), replace=False)
    same = sum([x["id"] for x in svc.recommend(uids[u], k=a.k, retrieval="exact")["items"]]
               == [x["id"] for x in svc.recommend(None, k=a.k, retrieval="exact", history=history(u))["items"]]
               for u in users)
    print(f"agreement: {same}/{len(users)} users get the same exact top-{a.k} by history as by user id")
    # and the trained model's own full ranking after the same (all-splits) history
    from mrs.safe_load import load_torch_file
    from mrs.train.trainer import Trainer

    tr = Trainer.build(cfg, device=torch.device("cpu"))
    tr.model.load_state_dict(load_torch_file(a.run_dir / "best.pt")["model"])
    model, L = tr.model.eval(), cfg.model.seq_len
    hist = torch.full((ds.n_users, L), ds.n_items, dtype=torch.long)
    for u in range(ds.n_users):
        tail = i_sorted[starts[u]:starts[u + 1]][-L:]
        hist[u, L - len(tail):] = torch.from_numpy(tail.astype(np.int64))
    model.user_encoder.set_history(hist)
    with torch.no_grad():
        scores = model.full_sort_predict(torch.as_tensor(users), torch.zeros(len(users), len(ds.mode_names),
                                                                              dtype=torch.long))
    want = torch.topk(scores, a.k, dim=1).indices.numpy()
    same = sum([x["id"] for x in svc.recommend(uids[u], k=a.k, retrieval="exact")["items"]] == list(ids[want[r]])
               for r, u in enumerate(users))
    print(f"agreement: {same}/{len(users)} users get the trained model's own top-{a.k} by user id")
    picks = rng.integers(0, ds.n_users, a.requests)
    hists = [history(u) for u in picks]
    for retrieval in ("exact", "folded"):
        out = {}
        for kind in ("user", "history"):
            lat = []
            for j, u in enumerate(picks):
                t = time.perf_counter()
                if kind == "user":
                    svc.recommend(uids[u], k=a.k, retrieval=retrieval)
                else:
                    svc.recommend(None, k=a.k, retrieval=retrieval, history=hists[j])
                lat.append(time.perf_counter() - t)
            lat_ms = np.array(lat[len(lat) // 10:]) * 1e3  # the first 10% warm up
            out[kind] = np.percentile(lat_ms, [50, 99])
            print(f"{retrieval:>6} by {kind:<7}: p50 {out[kind][0]:.3f} ms, p99 {out[kind][1]:.3f} ms")
        print(f"{retrieval:>6} history/user p50 ratio: {out['history'][0] / out['user'][0]:.2f}x")
    print(f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus at the end")
    print(f"({ds.n_users} users, {ds.n_items} items, dim {svc.model.dim}, "
          f"{svc.model.manifest['sequential']['kind']} seq_len {svc.model.manifest['sequential']['seq_len']}, "
          f"mean history {np.mean([len(h) for h in hists]):.1f} items)")


if __name__ == "__main__":
    main()
