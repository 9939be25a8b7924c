"""HTTP load on loopback: ``mrs serve`` in a subprocess, 1 / 8 / 32 concurrent clients, a fixed
number of requests per level (then stop); p50 / p99 latency and requests/s for the folded-ANN
path and the exact path in the same run, and the server's memory.

The client is Python threads with one keep-alive ``httpx.Client`` each, on the same 2 cores as
the server, so the figures include the client's own CPU use.

    python experiments/benchmarks/bench_serve_http.py --requests 20000     # Sports-sized model
"""
from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1]) / 1024
    return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))


def load_level(url: str, n_clients: int, n_requests: int, users: list[str], retrieval: str, k: int,
               max_seconds: float) -> dict:
    import httpx

    counter = itertools.count()
    lat: list[list[float]] = [[] for _ in range(n_clients)]
    errors = [0] * n_clients
    deadline = time.perf_counter() + max_seconds
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(users), n_requests)
    ctx = rng.integers(0, 2, n_requests)

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as h:
            while True:
                j = next(counter)
                if j >= n_requests or time.perf_counter() > deadline:
                    return
                body = {"user": users[picks[j]], "k": k, "retrieval": retrieval, "context": f"context{ctx[j]}"}
                t = time.perf_counter()
                r = h.post("/recommend", json=body)
                lat[c].append(time.perf_counter() - t)
                errors[c] += r.status_code != 200

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    all_lat = np.concatenate([np.asarray(x) for x in lat]) * 1e3
    return {"clients": n_clients, "requests": len(all_lat), "errors": sum(errors), "wall_s": wall,
            "rps": len(all_lat) / wall, "p50": float(np.percentile(all_lat, 50)),
            "p99": float(np.percentile(all_lat, 99))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="model directory (default: a generated Sports-sized one)")
    p.add_argument("--requests", type=int, default=20000, help="requests per level")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--retrievals", nargs="+", default=["folded", "exact"])
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop a level after this long")
    p.add_argument("-k", type=int, default=12)
    args = p.parse_args()
    import httpx

    model = args.model
    if model is None:
        from bench_serve_ann import make_model_dir

        model = Path("/tmp/bench_serve/model-18357")
        if not (model / "manifest.json").is_file():
            make_model_dir(model, 35598, 18357)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    server = subprocess.Popen([sys.executable, "-m", "mrs", "serve", "--model", str(model), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.5)
        users = [x for x in (model / "user_ids.txt").read_text().splitlines()[:5000]]
        print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} model={model} items={health['n_items']} "
              f"users={health['n_users']} index={health['index']} k={args.k}")
        rss0, _ = rss_mb(server.pid)
        print(f"server RSS after start: {rss0:.0f} MB")
        rows = []
        for retrieval in args.retrievals:
            load_level(url, 2, 200, users, retrieval, args.k, 30)  # warm-up
            for n in args.levels:
                r = load_level(url, n, args.requests, users, retrieval, args.k, args.max_seconds)
                rows.append((retrieval, r))
                print(f"{retrieval:<7} clients={n:>3} requests={r['requests']:>6} errors={r['errors']} "
                      f"{r['rps']:>8.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        rss, hwm = rss_mb(server.pid)
        print(f"server RSS at the end: {rss:.0f} MB (peak {hwm:.0f} MB)")
        by = {(ret, r["clients"]): r for ret, r in rows}
        for n in args.levels:
            if ("folded", n) in by and ("exact", n) in by:
                f, e = by[("folded", n)], by[("exact", n)]
                print(f"clients={n}: folded/exact req/s {f['rps'] / e['rps']:.2f}x, p99 {f['p99'] / e['p99']:.2f}x")
        if ("folded", 8) in by:
            r = by[("folded", 8)]
            ok = r["p99"] <= 20 and r["rps"] >= 1000
            print(f"target at 8 clients (p99 <= 20 ms and >= 1000 req/s): {'met' if ok else 'MISSED'} "
                  f"(p99 {r['p99']:.2f} ms, {r['rps']:.0f} req/s)")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
