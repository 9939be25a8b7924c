"""``mrs export``, ``mrs recommend`` and ``mrs serve``. Heavy imports happen inside the handlers."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mrs.serve.index import IndexSpec  # numpy only: faiss is imported when an index is built or loaded


def register(subparsers: argparse._SubParsersAction) -> None:
    e = subparsers.add_parser(
        "export", help="freeze a trained run into a self-contained model directory",
        description="Write MODEL_DIR: factors.safetensors (user/item factors after the encoder, CP "
                    "mode factors, popularity, histories, content projection), manifest.json, id lists.")
    e.add_argument("run_dir", type=Path, help="a finished `mrs train` run directory (config.yaml, metrics.json and the weights it reports: final.pt where the run was refit on train + valid, else best.pt)")
    e.add_argument("--out", type=Path, required=True, help="model directory to write")
    e.add_argument("--force", action="store_true", help="replace an earlier model directory at --out "
                   "(files export did not write are kept; --out may not be, contain or be inside RUN_DIR)")
    e.add_argument("--index", choices=["hnsw", "ivf", "ivfpq", "none"], default="hnsw",
                   help="also build the ANN index into the model directory (default hnsw)")
    e.add_argument("--allow-unfinished", action="store_true",
                   help="export a run without metrics.json (killed or still training): its best.pt so far")
    e.set_defaults(func=_export)

    r = subparsers.add_parser(
        "recommend", help="top-k items for a user (or a file of users) from a model directory",
        description="Prints ranked raw item ids with scores; --users FILE --out FILE for a batch; "
                    "--format hm-kaggle writes the H&M competition's submission file.")
    _model_args(r)
    r.add_argument("--user", help="raw user id")
    r.add_argument("--history", help="comma-separated raw item ids, oldest first: the state of a "
                   "sequential user encoder (sasrec / bert4rec) instead of --user's")
    r.add_argument("--users", type=Path, help="file of raw user ids (one per line, or a csv with a "
                   "customer_id / user_id column, e.g. H&M's customers.csv)")
    r.add_argument("--out", type=Path, help="output file for --users (csv; JSON lines with --format jsonl)")
    r.add_argument("--force", action="store_true", help="replace an existing --out file")
    r.add_argument("--format", choices=["csv", "jsonl", "hm-kaggle"], default="csv")
    r.add_argument("--context", help="label of the context mode (default: train-frequency mix)")
    r.add_argument("--time", help="label of the time mode (default: train-frequency mix)")
    r.add_argument("--mode", action="append", default=[], metavar="NAME=LABEL", help="any mode by name")
    r.add_argument("-k", type=int, default=12)
    r.add_argument("--exclude-seen", action="store_true", help="drop items the user already has")
    r.add_argument("--explore", choices=["none", "ucb", "thompson"], default="none",
                   help="exploration for uncertain (tail) items (ranks exactly)")
    r.add_argument("--explore-strength", type=float, default=1.0, help="β of --explore")
    r.add_argument("--batch-size", type=int, default=512)
    r.set_defaults(func=_recommend)

    s = subparsers.add_parser(
        "serve", help="HTTP JSON API (FastAPI + uvicorn; docs at /docs)",
        description="Serve a model directory over HTTP. It binds 127.0.0.1 (this machine only) by "
                    "default. The API has no authentication of its own: with --host 0.0.0.0 anyone "
                    "who can reach the port can query it and add items (POST /items). Set an API "
                    "key (--api-key or MRS_API_KEY) to require 'Authorization: Bearer KEY' on POST "
                    "/items, and put a reverse proxy with TLS in front for anything beyond "
                    "localhost (SECURITY.md).")
    _model_args(s)
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the API to the network)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", default=os.environ.get("MRS_API_KEY") or None,
                   help="require 'Authorization: Bearer KEY' (or 'X-API-Key: KEY') on mutating "
                        "routes (POST /items); default: $MRS_API_KEY (prefer it: a command line "
                        "is visible to other users in ps)")
    s.set_defaults(func=_serve)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="model directory from `mrs export`")
    p.add_argument("--retrieval", choices=["exact", "folded", "two_stage"], default="folded",
                   help="exact full ranking, ANN on the folded CP query (default), or ANN on the "
                        "user embedding + CP rerank")
    p.add_argument("--candidates", type=int, default=300, help="two_stage: ANN candidates reranked")
    p.add_argument("--index", choices=["hnsw", "ivf", "ivfpq"], default="hnsw")
    p.add_argument("--ef-search", type=int, default=IndexSpec().ef_search, 
                   help="HNSW query beam (default %(default)s)")


def _open(args: argparse.Namespace):
    from mrs.serve.service import RecommendService

    spec = IndexSpec(kind=args.index, ef_search=args.ef_search)
    return RecommendService.open(args.model, args.retrieval, spec, args.candidates)


def _export(args: argparse.Namespace) -> int:
    from mrs.serve.export import export_run

    index = None if args.index == "none" else IndexSpec(kind=args.index)
    out = export_run(args.run_dir, args.out, force=args.force, index=index,
                     allow_unfinished=args.allow_unfinished)
    print(f"model directory: {out}")
    return 0


def _modes(args: argparse.Namespace) -> dict:
    from mrs.errors import MrsError

    modes = {}
    for kv in args.mode:
        if "=" not in kv:
            raise MrsError(f"--mode {kv!r}: expected NAME=LABEL")
        name, lab = kv.split("=", 1)
        modes[name] = lab
    if args.context is not None:
        modes["context"] = args.context
    if args.time is not None:
        modes["time"] = args.time
    return modes


def _recommend(args: argparse.Namespace) -> int:
    from mrs.errors import MrsError

    history = None if args.history is None else [x for x in args.history.split(",") if x]
    if (args.user is None and history is None) == (args.users is None):
        raise MrsError("give exactly one of --user ID (and/or --history IDS) or --users FILE")
    if args.users is not None:
        from mrs.serve.batch import check_batch_out

        if args.out is None:
            raise MrsError("--users needs --out FILE")
        check_batch_out(args.out, args.users, args.force)  # before the model is loaded
    svc = _open(args)
    modes = _modes(args)
    if args.users is None:
        r = svc.recommend(args.user, modes, args.k, args.exclude_seen, history=history,
                          explore=args.explore, explore_strength=args.explore_strength)
        print_recommendation(r)
        return 0
    from mrs.serve.batch import read_user_list, write_batch

    users = read_user_list(args.users)
    n = write_batch(svc, users, args.out, modes, args.k, args.exclude_seen, args.format, args.batch_size)
    print(f"{n} users -> {args.out}")
    return 0


def print_recommendation(r: dict, file=None) -> None:
    """The CLI's (and the demo's) print-out of one response."""
    file = file or sys.stdout  # looked up at call time (pytest swaps sys.stdout)
    modes = ", ".join(f"{k}={v}" for k, v in r["modes"].items()) or "none"
    note = f"; fallback: {r['fallback']}" if r["fallback"] else ""
    if "history_known" in r:
        note += f"; history: {r['history_known']} known, {r['history_unknown']} unknown ids"
    print(f"user {r['user']}  (modes: {modes}; retrieval: {r['retrieval']}{note})", file=file)
    for rank, it in enumerate(r["items"], 1):
        print(f"{rank:>3}  {it['id']}  {it['score']:.4f}", file=file)


def _serve(args: argparse.Namespace) -> int:
    import faiss
    import torch
    import uvicorn

    from mrs.serve.api import create_app

    # Requests run in uvicorn's thread pool: parallelism comes from concurrent requests, so each
    # one uses a single thread (intra-op threads on top would oversubscribe the cores).
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    svc = _open(args)
    print(f"serving {args.model} ({svc.health()['n_items']} items, retrieval {args.retrieval}) "
          f"on http://{args.host}:{args.port}  (docs: /docs)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"warning: --host {args.host} without an API key: anyone who reaches this port can "
              f"add items (POST /items); set MRS_API_KEY (see SECURITY.md)", file=sys.stderr, flush=True)
    uvicorn.run(create_app(svc, api_key=args.api_key), host=args.host, port=args.port, log_level="warning")
    return 0
