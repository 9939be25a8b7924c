"""Where a served request's time goes without HTTP: ``RecommendService.recommend`` alone, per
request, for the folded and exact paths, then a cProfile of the folded path. Compare with
``bench_serve_http.py`` (same model directory) to see what HTTP, JSON and pydantic add.

    python experiments/benchmarks/profile_serve_service.py [--model /tmp/bench_serve/model-18357] [--users 2000]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path("/tmp/bench_serve/model-18357"),
                   help="model directory (bench_serve_ann.py generates the default one)")
    p.add_argument("--users", type=int, default=2000)
    args = p.parse_args()
    import faiss
    import torch

    from mrs.serve.service import RecommendService

    torch.set_num_threads(1)  # one thread per request, as in the server
    faiss.omp_set_num_threads(1)
    svc = RecommendService.open(args.model, retrieval="folded")
    print(f"model={args.model} load={os.getloadavg()[0]:.1f} efSearch={svc.index.spec.ef_search}")
    users = (args.model / "user_ids.txt").read_text().splitlines()[:args.users]
    for retrieval in ("folded", "exact"):
        t = time.perf_counter()
        for j, u in enumerate(users):
            svc.recommend(u, {"context": f"context{j % 2}"}, 12, False, None, retrieval)
        print(f"{retrieval:<7} {(time.perf_counter() - t) / len(users) * 1e3:.3f} ms per request "
              f"({len(users)} users, k=12)")
    prof = cProfile.Profile()
    prof.enable()
    for j, u in enumerate(users):
        svc.recommend(u, {"context": f"context{j % 2}"}, 12, False, None, "folded")
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
