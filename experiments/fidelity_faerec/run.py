"""Fidelity harness (issue 22): FAERec's own code and mrs's ``fusion: faerec``, same inputs.

Amazon 2014 Beauty 5-core (``Beauty.txt``, leave-last-out, full ranking), one item-embedding
matrix both sides read (mrs's ``attributes-svd`` store of the real item attributes, exported as
FAERec's ``itm_emb_np.npy`` and checked bit-identical before any training: ``export.py``), FAERec's
Beauty settings on both sides (mrs: ``mrs_faerec_beauty.yaml``), the same epoch cap, one thread.
Per seed, back to back, one process at a time: FAERec (ZhifuWei/FAERec, its files unchanged, in
``work/faerec-venv`` through ``faerec_worker.py``) then ``mrs train`` (through
``experiments/fidelity/mrs_worker.py``). Printed per side: test HR@10 / NDCG@10 overall and on
FAERec's tail items (``ht_process.classify_head_and_tail``: outside the top 20% by interaction
count over the whole sequence file, imported from their code) mean ± sd over seeds, the
difference, the median epoch training time and the ratio mrs / FAERec, the targets (|Δ HR@10|
≤ max(0.003, 5% of FAERec's mean) overall and on the tail; epoch time ratio ≤ 0.5) and a verdict.

    python experiments/fidelity_faerec/run.py --prepare                 # data, store, export, venv
    python experiments/fidelity_faerec/run.py --seeds 0 1 2 --epochs 10  # the runs (resumable)
    python experiments/fidelity_faerec/run.py --report                  # the table from results.jsonl

Resumable: finished (side, seed) runs are read from ``WORK/results.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import site
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))   # run from anywhere: the worktree's mrs
sys.path.insert(0, str(HERE))

from export import check_faerec_export, export_faerec  # noqa: E402

from mrs.config import read_yaml  # noqa: E402
from mrs.errors import MrsError  # noqa: E402
from mrs.losses import LOSSES  # noqa: E402

FAEREC_REPO = "ZhifuWei/FAERec"
FAEREC_COMMIT = "8e2d4be320a567d724535d426b72ded20e140dcb"
STORE = "attributes-svd"
CONFIG = HERE / "mrs_faerec_beauty.yaml"
# FAERec's main.py options for the run (their defaults are the Beauty run; --star_test -1: validate
# every epoch, as the capped budget never reaches their 60 epochs without validation).
FAEREC_ARGS = ["--data_name", "Beauty", "--no_cuda", "--star_test", "-1", "--patience", "10"]


def sh(cmd: list[str], **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def prepare(a) -> None:
    """The prepared dataset, the feature store, FAERec's embedding file, and FAERec's venv."""
    work, data = Path(a.work), Path(a.work) / "data" / "beauty"
    src = Path(a.faerec) / "FAERec" / "src"
    if not (src / "main.py").is_file():
        raise MrsError(f"{src}/main.py missing: export {FAEREC_REPO} @ {FAEREC_COMMIT[:7]} into {a.faerec} "
                       f"(README.md: how to get their code)")
    py = [sys.executable, "-m", "mrs"]
    if not (data / "dataset.json").is_file():
        sh([*py, "prepare", "amazon2014", "--sequences", Path(a.data) / "Beauty.txt", "--attributes",
            Path(a.data) / "Beauty_item2attributes.json", "--split", "leave-last-out", "--out", data], cwd=ROOT)
    if not (data / "features" / f"{STORE}.h5").is_file():
        sh([*py, "features", "attributes", "--dataset", data, "--dim", "128", "--dtype", "float32"], cwd=ROOT)
    emb = work / "emb" / "itm_emb_np.npy"
    try:
        print("export up to date", check_faerec_export(data, STORE, emb, Path(a.data) / "Beauty.txt"))
    except MrsError:
        print("export", export_faerec(data, STORE, emb))
    venv = work / "faerec-venv"
    if not (venv / "bin" / "python").is_file():
        sh([sys.executable, "-m", "venv", "--without-pip", venv])
    sp = next(iter(venv.glob("lib/python*/site-packages")))
    # nothing installed: the venv reads this one's site-packages, so both sides run the same torch
    pth, want = sp / "zz_mrs_site.pth", "\n".join(site.getsitepackages()) + "\n"
    if not pth.is_file() or pth.read_text() != want:
        pth.write_text(want)
    sh([venv / "bin" / "python", "-c", "import models, trainers, datasets, utils, ht_process, llm"],
       cwd=src, env={**os.environ, "PYTHONPATH": str(src)})


def their_tail(a) -> set[int]:
    """FAERec's tail items (raw ids), by their own function on their own reading of the file."""
    sys.path.insert(0, str(Path(a.faerec) / "FAERec" / "src"))
    from ht_process import classify_head_and_tail
    from utils import get_user_seqs

    seqs = get_user_seqs(str(Path(a.data) / "Beauty.txt"))[0]
    head, tail = set(), set()
    classify_head_and_tail(seqs, 0.2, head, tail, set(), set())
    return tail


def run_faerec(a, seed: int, out: Path) -> dict:
    work, src = Path(a.work), (Path(a.faerec) / "FAERec" / "src").resolve()
    out.mkdir(parents=True, exist_ok=True)
    emb = out / "llm_emb" / "Beauty" / "itm_emb_np.npy"
    emb.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "emb" / "itm_emb_np.npy", emb)
    (out / "llm_emb" / "Beauty" / "pca_itm_emb_np.npy").unlink(missing_ok=True)  # their cache: refit
    print("check", check_faerec_export(work / "data" / "beauty", STORE, emb, Path(a.data) / "Beauty.txt"))
    cmd = [Path(a.work).resolve() / "faerec-venv" / "bin" / "python", HERE / "faerec_worker.py", src,
           out / "result.json", "--", "--data_dir", f"{Path(a.data).resolve()}/", "--output_dir", "output/",
           "--seed", str(seed), "--epochs", str(a.epochs), *FAEREC_ARGS]
    with open(out / "log.txt", "w") as log:
        sh(cmd, cwd=out, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})
    r = json.loads((out / "result.json").read_text())
    t = r["test"]
    return {"epoch_s": r["epoch_s"], "epochs_run": r["epochs_run"], "best_epoch": r["best_epoch"],
            "valid_curve": r["valid_curve"], "total_s": r["total_s"],
            "hit@10": t["hit@10"], "ndcg@10": t["ndcg@10"], "tail_hit@10": t["tail_hit@10"],
            "tail_ndcg@10": t["tail_ndcg@10"], "n": t["n"], "n_tail": t["n_tail"]}


def run_mrs(a, seed: int, out: Path) -> dict:
    import numpy as np
    import pandas as pd

    work = Path(a.work)
    print("check", check_faerec_export(work / "data" / "beauty", STORE, work / "emb" / "itm_emb_np.npy",
                                       Path(a.data) / "Beauty.txt"))
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, ROOT / "experiments" / "fidelity" / "mrs_worker.py", out, "--",
           "--config", CONFIG, "--set", f"data.dir={(work / 'data' / 'beauty').resolve()}",
           "--set", f"train.seed={seed}", "--set", f"train.epochs={a.epochs}"]
    if a.mrs_loss:
        cmd += ["--set", f"model.loss={a.mrs_loss}"]
    log = out.parent / f"{out.name}.log"
    with open(log, "w") as fh:
        sh(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    r = json.loads([ln for ln in log.read_text().splitlines() if ln.startswith('{"side": "mrs"')][-1])
    pq = pd.read_parquet(out / "per_query.parquet")
    pq = pq[(pq.query_kind == "user") & (pq.split == "test") & (pq.slice == "all")]
    inter = pd.read_parquet(work / "data" / "beauty" / "interactions.parquet")
    items = pd.read_parquet(work / "data" / "beauty" / "items.parquet")
    raw = items.set_index("item")["item_id"].astype(int)
    test_item = inter[inter.split == 2].set_index("user")["item"]
    tail = their_tail(a)
    is_tail = np.array([raw[test_item[u]] in tail for u in pq.user])
    return {"epoch_s": r["epoch_s"], "epochs_run": r["epochs_run"], "best_epoch": r["best_epoch"],
            "valid_curve": r["valid_curve"], "total_s": r["total_s"],
            "hit@10": float(pq["hit@10"].mean()), "ndcg@10": float(pq["ndcg@10"].mean()),
            "tail_hit@10": float(pq["hit@10"][is_tail].mean()),
            "tail_ndcg@10": float(pq["ndcg@10"][is_tail].mean()), "n": int(len(pq)),
            "n_tail": int(is_tail.sum()), "mrs_hit@10": r["test"].get("hit@10")}


def msd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


def report(rows: list[dict], mrs_loss: str = "bpr") -> None:
    """The table for the mrs runs with ``mrs_loss`` against FAERec's runs of the same seeds."""
    mrs = [r for r in rows if r["side"] == "mrs" and r.get("loss", "bpr") == mrs_loss]
    seeds = {r["seed"] for r in mrs}
    sides = {"faerec": [r for r in rows if r["side"] == "faerec" and r["seed"] in seeds], "mrs": mrs}
    if not sides["faerec"] or not sides["mrs"]:
        print("no finished pair of runs yet")
        return
    caps = sorted({r["epochs"] for r in rows})
    print(f"Beauty 5-core, leave-last-out, full ranking; mrs model.loss {mrs_loss}; epoch cap {caps}; "
          f"seeds faerec {[r['seed'] for r in sides['faerec']]}, mrs {[r['seed'] for r in sides['mrs']]}")
    print("| test | FAERec (theirs) | mrs | Δ mrs − theirs | target |")
    print("|---|---|---|---|---|")
    verdict = []
    for key, label in (("hit@10", "HR@10"), ("ndcg@10", "NDCG@10"), ("tail_hit@10", "tail HR@10"),
                       ("tail_ndcg@10", "tail NDCG@10")):
        f, m = [r[key] for r in sides["faerec"]], [r[key] for r in sides["mrs"]]
        d = statistics.mean(m) - statistics.mean(f)
        target = ""
        if key in ("hit@10", "tail_hit@10"):
            tol = max(0.003, 0.05 * statistics.mean(f))
            ok = abs(d) <= tol
            verdict.append(ok)
            target = f"abs(Δ) ≤ {tol:.4f}: {'met' if ok else 'MISSED'}"
        print(f"| {label} | {msd(f)} | {msd(m)} | {d:+.4f} | {target} |")
    ef = statistics.median([t for r in sides["faerec"] for t in r["epoch_s"]])
    em = statistics.median([t for r in sides["mrs"] for t in r["epoch_s"]])
    ok = em / ef <= 0.5
    verdict.append(ok)
    print(f"| median epoch train s | {ef:.1f} | {em:.1f} | ratio {em / ef:.2f} | ≤ 0.5: {'met' if ok else 'MISSED'} |")
    for s, rs in sides.items():
        for r in rs:
            best = r["best_epoch"] + (1 if s == "faerec" else 0)  # faerec_worker keeps 0-based indices
            print(f"{s} seed {r['seed']}: epochs run {r['epochs_run']}, best valid epoch {best}, "
                  f"valid NDCG@20 {', '.join(f'{v:.4f}' for v in r['valid_curve'])}; "
                  f"test users {r['n']} (tail {r['n_tail']}); wall {r['total_s']:.0f} s")
    print("verdict:", "all targets met" if all(verdict) else "target missed (see the rows marked MISSED)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(HERE / "work"))
    ap.add_argument("--faerec", default=str(HERE / "work"), help="folder holding their FAERec/src")
    ap.add_argument("--data", default="/work/shared/data/amazon2014", help="folder of Beauty.txt and "
                    "Beauty_item2attributes.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10, help="the equal epoch cap of both sides")
    ap.add_argument("--sides", nargs="+", default=["faerec", "mrs"], choices=["faerec", "mrs"])
    ap.add_argument("--prepare", action="store_true", help="only prepare the inputs")
    ap.add_argument("--report", action="store_true", help="only print the table from results.jsonl")
    ap.add_argument("--mrs-loss", default=None, help="mrs side: --set model.loss=X (the YAML's "
                    "model.loss when unset); the report shows the mrs runs with this loss")
    a = ap.parse_args()
    if a.mrs_loss is not None and a.mrs_loss not in LOSSES:  # refused here, not after FAERec's hour
        ap.error(f"--mrs-loss {a.mrs_loss!r}: not a model.loss (have: {', '.join(LOSSES.names())})")
    try:
        results = Path(a.work) / "results.jsonl"
        rows = [json.loads(ln) for ln in results.read_text().splitlines()] if results.is_file() else []
        loss = a.mrs_loss or read_yaml(CONFIG)["model"]["loss"]  # the label is the loss the runs use
        if a.report:
            report(rows, loss)
            return
        prepare(a)
        if a.prepare:
            return
        done = {(r["side"], r["seed"], r["epochs"], r.get("loss", "bpr") if r["side"] == "mrs" else "") for r in rows}
        for seed in a.seeds:
            for side in a.sides:
                tag = loss if side == "mrs" else ""
                if (side, seed, a.epochs, tag) in done:
                    continue
                out = Path(a.work) / "runs" / (f"{side}-e{a.epochs}-s{seed}" + (f"-{loss}" if tag and loss != "bpr" else ""))
                r = (run_faerec if side == "faerec" else run_mrs)(a, seed, out)
                row = {"side": side, "seed": seed, "epochs": a.epochs, **({"loss": loss} if side == "mrs" else {}), **r}
                rows.append(row)
                with open(results, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{side} seed {seed}: HR@10 {r['hit@10']:.4f} tail HR@10 {r['tail_hit@10']:.4f} "
                      f"median epoch {statistics.median(r['epoch_s']):.1f} s", flush=True)
        report(rows, loss)
    except MrsError as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
