"""Fidelity harness (issue 21, point 3): MMRec's own code and mrs, same run, identical inputs.

For one prepared mrs dataset, per model in ``MODELS`` and per seed, train MMRec (enoche/MMRec
@ e775373, its code unchanged, through ``mmrec_worker.py`` in an isolated venv) and ``mrs
train`` (``mrs_worker.py``) back to back, one process at a time, one thread each, then print per
model: test Recall@20 / NDCG@20 mean ± sd over seeds on both sides, the difference, the median
epoch training time of each and the ratio mrs / MMRec, against the targets (|Δ R@20| ≤
max(0.003, 5% of MMRec's mean); mrs epoch time ≤ 0.5 × MMRec's).

Inputs: ``mrs.prep.mmrec_export`` writes MMRec's ``<name>.inter`` (the prepared split as
``x_label``) and ``image_feat.npy`` / ``text_feat.npy`` (the stores as mrs's trainer reads them,
missing rows mean-filled) and the harness refuses to train (one line) unless the files MMRec
will read hash to what mrs reads. Protocol on both sides: valid Recall@20 picks the epoch
(MMRec's ``stopping_step`` = S ⇔ mrs ``train.patience`` = S + 1: MMRec stops after S + 1 evaluations
without improvement), test read at that epoch with train items masked (MMRec's protocol:
``eval.mask_valid_at_test=false``, ``train.final_fit=train``), users without train rows out
of the figures (MMRec's ``filter_out_cod_start_users``; mrs's ``all`` slice).

    python experiments/fidelity/run.py --mmrec /tmp/MMRec --data DIR --name hm \\
        --text text-minilm --image image-efficientnet_lite0 --seeds 0 1 2 --epochs 50 --out WORK
    python experiments/fidelity/run.py ... --report       # the table from WORK/results.jsonl only

Resumable: finished (model, side, seed) runs are read from ``WORK/results.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import site
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: the worktree's mrs

from mrs.errors import MrsError  # noqa: E402
from mrs.prep.mmrec_export import check_export, export_mmrec  # noqa: E402

MMREC_COMMIT = "e775373"


@dataclass
class Model:
    """One row of the table: MMRec's model name and single-valued config (its YAML's grid
    values picked once, the same for every dataset), and the mrs overrides meaning the same."""

    mmrec: str
    mmrec_cfg: dict
    mrs: dict
    content: bool = True     # reads the feature files (MMRec's is_multimodal_model)
    note: str = ""           # known, unremovable differences between the two sides
    extra: dict = field(default_factory=dict)


# A new model is one row here.
MODELS: dict[str, Model] = {
    "mf": Model("BPR", {"reg_weight": 1e-4}, {"model.encoder": "mf", "model.reg": 1e-4}, content=False,
                note="MMRec: EmbLoss (non-squared norms), xavier-normal init; mrs: squared L2, xavier-uniform"),
    "lightgcn": Model("LightGCN", {"n_layers": 2, "reg_weight": 1e-4},
                      {"model.encoder": "lightgcn", "model.layers": 2, "model.reg": 1e-4}, content=False,
                      note="MMRec: EmbLoss (non-squared norms) on ego rows; mrs: squared L2"),
    "vbpr": Model("VBPR", {"reg_weight": 1e-4},
                  {"model.encoder": "vbpr", "model.dim": 128, "model.reg": 0.0, "model.options.vbpr.reg_weight": 1e-4}),
    "freedom": Model("FREEDOM", {"dropout": 0.8, "reg_weight": 1e-4, "knn_k": 10, "mm_image_weight": 0.1,
                                 "n_ui_layers": 2, "n_mm_layers": 1},
                     {"model.encoder": "freedom", "model.reg": 0.0, "model.edge_drop": 0.8,
                      "model.modality_bpr_weight": 1e-4, "model.knn_k": 10, "model.mm_image_weight": 0.1,
                      "model.layers": 2, "model.item_layers": 1},
                     note="mean-filled rows: MMRec gives them kNN edges, mrs none (mrs.graph.freedom_knn_adj)"),
    "lattice": Model("LATTICE", {"reg_weight": 1e-4, "knn_k": 10, "lambda_coeff": 0.9,
                                 "n_layers": 1},
                     {"model.encoder": "lattice", "model.reg": 0.0, "model.knn_k": 10, "model.layers": 2,
                      "model.item_layers": 1, "model.options.lattice.lambda_coeff": 0.9,
                      "model.options.lattice.reg_weight": 1e-4},
                     note="MMRec decays lr by 0.96 per 50 epochs (LATTICE.yaml); mrs keeps it constant"),
    "bm3": Model("BM3", {"n_layers": 1, "dropout": 0.5, "reg_weight": 0.1, "cl_weight": 2.0},
                 {"model.encoder": "bm3", "model.reg": 0.0, "model.layers": 1, "model.options.bm3.dropout": 0.5,
                  "model.options.bm3.reg_weight": 0.1, "model.options.bm3.cl_weight": 2.0}),
    "mmgcn": Model("MMGCN", {"n_layers": 2, "reg_weight": 1e-4},
                   {"model.encoder": "mmgcn", "model.reg": 0.0, "model.options.mmgcn.reg_weight": 1e-4},
                   note="MMRec-behaviour defaults kept: ID rows / preferences untrained, 3 layers, concat"),
    "grcn": Model("GRCN", {"n_layers": 3, "latent_embedding": 64, "reg_weight": 1e-4},
                  {"model.encoder": "grcn", "model.dim": 192, "model.reg": 0.0, "model.options.grcn.latent_dim": 64,
                   "model.options.grcn.n_routing": 3, "model.options.grcn.reg_weight": 1e-4},
                  note="model.dim 192 = MMRec's 64 ID + 64 per modality with image and text (MMRec needs both)"),
    "mgcn": Model("MGCN", {"n_ui_layers": 2, "n_layers": 1, "knn_k": 10, "reg_weight": 1e-4, "cl_loss": 1e-3},
                  {"model.encoder": "mgcn", "model.reg": 0.0, "model.layers": 2, "model.item_layers": 1,
                   "model.knn_k": 10, "model.options.mgcn.reg_weight": 1e-4, "model.options.mgcn.cl_loss": 1e-3},
                  note="MMRec decays lr by 0.96 per 50 epochs (MGCN.yaml); mrs keeps it constant"),
    "lgmrec": Model("LGMRec", {"feat_embed_dim": 64, "cf_model": "lightgcn", "n_ui_layers": 2, "n_mm_layers": 2,
                               "n_hyper_layer": 1, "hyper_num": 4, "keep_rate": 0.5, "alpha": 0.3,
                               "cl_weight": 1e-4, "reg_weight": 1e-6},
                    {"model.encoder": "lgmrec", "model.reg": 0.0, "model.layers": 2,
                     "model.options.lgmrec.n_mm_layers": 2, "model.options.lgmrec.n_hyper_layer": 1,
                     "model.options.lgmrec.hyper_num": 4, "model.options.lgmrec.keep_rate": 0.5,
                     "model.options.lgmrec.alpha": 0.3, "model.options.lgmrec.cl_weight": 1e-4,
                     "model.options.lgmrec.reg_weight": 1e-6},
                    note="MMRec draws fresh Gumbel noise at every evaluation; mrs one fixed draw (eval_noise=true)"),
}


def install_mmrec_venv(venv: Path) -> None:
    """An isolated venv for MMRec. MMRec's imports (torch, numpy, scipy, pandas, pyyaml, lmdb,
    matplotlib, torchvision, pillow, tqdm, torch_geometric) all come from *this* interpreter's
    site-packages through a ``.pth`` file, so both sides run the very same torch build (as
    ``experiments/benchmarks/bench_sequential.py`` does for RecBole); nothing is pip-installed."""
    if not (venv / "bin" / "python").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    sp = next(iter(venv.glob("lib/python*/site-packages")))
    (sp / "zz_mrs_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    missing = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import torch, numpy, scipy, pandas, yaml, lmdb, matplotlib, torchvision, PIL, tqdm"],
                             capture_output=True, text=True)
    if missing.returncode:
        raise MrsError(f"{venv}: MMRec's imports fail: {missing.stderr.strip().splitlines()[-1]}")


def check_mmrec(root: Path) -> Path:
    src = root / "src"
    if not (src / "utils" / "quick_start.py").is_file():
        raise MrsError(f"--mmrec {root}: no src/utils/quick_start.py; check out enoche/MMRec at {MMREC_COMMIT} "
                       f"(git clone https://github.com/enoche/MMRec && git -C MMRec checkout {MMREC_COMMIT})")
    return src


def thread_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               TQDM_DISABLE="1", PYTHONHASHSEED="0")
    return env


def mmrec_job(a: argparse.Namespace, m: Model, seed: int, data_root: Path) -> dict:
    cfg = {"use_gpu": False, "gpu_id": 0, "data_path": str(data_root) + "/", "inter_file_name": f"{a.name}.inter",
           "USER_ID_FIELD": "userID", "ITEM_ID_FIELD": "itemID", "TIME_FIELD": "timestamp",
           "inter_splitting_label": "x_label", "filter_out_cod_start_users": True,
           "vision_feature_file": "image_feat.npy", "text_feature_file": "text_feat.npy",
           "field_separator": "\t", "epochs": a.epochs, "stopping_step": a.stopping_step, "eval_step": a.eval_every,
           "train_batch_size": a.batch_size, "eval_batch_size": 4096, "learning_rate": a.lr,
           "embedding_size": 64, "metrics": ["Recall", "NDCG"], "topk": [10, 20, 50],
           "valid_metric": "Recall@20", "save_recommended_topk": False, **m.mmrec_cfg}
    return {"model": m.mmrec, "dataset": a.name, "seed": seed, "threads": 1, "config": cfg}


def mrs_args(a: argparse.Namespace, m: Model, seed: int) -> list[str]:
    lr = m.mmrec_cfg.get("learning_rate", a.lr)  # a model's own lr, where its row sets one, on both sides
    feats = [s for s in (a.text, a.image) if s] if m.content else []  # MMRec's VBPR concatenates (text, image)
    sets = {"data.dir": a.data, "data.features": "[" + ",".join(feats) + "]", "data.fill": "mean",
            "model.dim": 64, "model.modes": False, "model.fusion": "none",
            "train.epochs": a.epochs, "train.eval_every": a.eval_every, "train.patience": a.stopping_step + 1,
            "train.batch_size": a.batch_size,
            "train.lr": lr, "train.seed": seed, "train.num_threads": 1, "train.device": "cpu",
            "train.final_fit": "train", "train.select_metric": "recall@20", "eval.ks": "[10,20,50]",
            "eval.metrics": "[recall,ndcg]", "eval.bootstrap": 0, "eval.slices": "[all]", "eval.query": "user",
            "eval.both_queries": False, "eval.mask_valid_at_test": False, "eval.mask_repurchase": True,
            "eval.exposure": False, **m.mrs}
    return [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]


def run_one(a: argparse.Namespace, model: str, side: str, seed: int, src: Path, data_root: Path) -> dict:
    m = MODELS[model]
    env = thread_env()
    if side == "mmrec":
        cmd = [str(Path(a.venv) / "bin" / "python"), str(HERE / "mmrec_worker.py"),
               json.dumps(mmrec_job(a, m, seed, data_root))]
        cwd = src
    else:
        run_dir = Path(a.out) / "runs" / f"{a.name}_{model}_s{seed}"
        if run_dir.exists():
            import shutil
            shutil.rmtree(run_dir)  # an interrupted run: start it again
        cmd = [sys.executable, str(HERE / "mrs_worker.py"), str(run_dir), "--", *mrs_args(a, m, seed)]
        cwd = HERE.parents[1]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"{side} exited {p.returncode}: {tail}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def load_results(path: Path) -> dict:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[(r["dataset"], r["model"], r["side"], r["seed"])] = r
    return done


def ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4f} ± {sd:.4f}"


def report(done: dict, name: str, models: list[str], seeds: list[int]) -> str:
    head = (f"{'model':<9} {'n':>3} {'MMRec R@20':>16} {'mrs R@20':>16} {'ΔR@20':>8} {'tol':>6} "
            f"{'MMRec N@20':>16} {'mrs N@20':>16} {'ΔN@20':>8} {'MMRec ep s':>10} {'mrs ep s':>9} "
            f"{'ratio':>6} {'best ep MMRec / mrs':>22}  verdict")
    lines = [f"dataset {name}; seeds {seeds}; test at the best valid Recall@20 epoch; epoch s = median "
             f"training time per epoch over all epochs of all seeds", head]
    for model in models:
        rs = {s: [done[(name, model, s, seed)] for seed in seeds if (name, model, s, seed) in done
                  and "error" not in done[(name, model, s, seed)]] for s in ("mmrec", "mrs")}
        errs = [done[(name, model, s, seed)]["error"] for s in ("mmrec", "mrs") for seed in seeds
                if "error" in done.get((name, model, s, seed), {})]
        n = min(len(rs["mmrec"]), len(rs["mrs"]))
        if n == 0:
            lines.append(f"{model:<9} {'0':>3}  not run" + (f": {errs[0]}" if errs else ""))
            continue
        rec = {s: [r["test"]["recall@20"] for r in rs[s]] for s in rs}
        ndcg = {s: [r["test"]["ndcg@20"] for r in rs[s]] for s in rs}
        ep = {s: statistics.median([t for r in rs[s] for t in r["epoch_s"]]) for s in rs}
        d_r = statistics.mean(rec["mrs"]) - statistics.mean(rec["mmrec"])
        d_n = statistics.mean(ndcg["mrs"]) - statistics.mean(ndcg["mmrec"])
        tol = max(0.003, 0.05 * statistics.mean(rec["mmrec"]))
        ratio = ep["mrs"] / ep["mmrec"]
        verdict = ["acc ok" if abs(d_r) <= tol else "ACC MISS", "speed ok" if ratio <= 0.5 else "SPEED MISS"]
        best = "/".join(str(r["best_epoch"]) for r in rs["mmrec"]) + " | " + "/".join(
            str(r["best_epoch"]) for r in rs["mrs"])
        lines.append(f"{model:<9} {n:>3} {ms(rec['mmrec']):>16} {ms(rec['mrs']):>16} {d_r:>+8.4f} {tol:>6.4f} "
                     f"{ms(ndcg['mmrec']):>16} {ms(ndcg['mrs']):>16} {d_n:>+8.4f} {ep['mmrec']:>10.3f} "
                     f"{ep['mrs']:>9.3f} {ratio:>6.3f} {best:>22}  {', '.join(verdict)}"
                     + (f" ({len(errs)} failed run(s): {errs[0]})" if errs else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mmrec", required=True, help=f"an enoche/MMRec checkout at {MMREC_COMMIT}")
    ap.add_argument("--data", required=True, help="prepared mrs dataset")
    ap.add_argument("--name", required=True, help="dataset name on MMRec's side (<name>.inter)")
    ap.add_argument("--text", default="", help="mrs feature store written as text_feat.npy")
    ap.add_argument("--image", default="", help="mrs feature store written as image_feat.npy")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=50, help="epoch cap, both sides")
    # validation (and MMRec's test pass) every N epochs, both sides: MMRec's eval_step, mrs's
    # train.eval_every (the same epochs when --epochs is a multiple of N; refused otherwise)
    ap.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (MMRec eval_step)")
    ap.add_argument("--stopping-step", type=int, default=20, help="MMRec's stopping_step (mrs patience + 1)")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-3, help="MMRec's overall.yaml learning_rate")
    ap.add_argument("--out", required=True, help="work dir: MMRec data folder, runs, results.jsonl")
    ap.add_argument("--venv", default=str(HERE / "work" / "mmrec-venv"))
    ap.add_argument("--report", action="store_true", help="print the table from results.jsonl and exit")
    a = ap.parse_args(argv)
    if a.eval_every < 1 or a.epochs % a.eval_every:
        ap.error(f"--eval-every {a.eval_every} must be >= 1 and divide --epochs {a.epochs} (mrs also validates "
                 f"the last epoch, MMRec only multiples of eval_step)")
    a.out, a.data, a.mmrec = (str(Path(x).resolve()) for x in (a.out, a.data, a.mmrec))  # workers run elsewhere
    out = Path(a.out)
    results = out / "results.jsonl"
    try:
        if not a.report:
            src = check_mmrec(Path(a.mmrec))
            install_mmrec_venv(Path(a.venv))
            data_root = out / "mmrec_data"
            stores = {m: s for m, s in (("text", a.text), ("image", a.image)) if s}
            export_mmrec(a.data, data_root / a.name, a.name, stores)
            out.mkdir(parents=True, exist_ok=True)
            for model in a.models:
                for seed in a.seeds:
                    # MMRec first on even seeds, mrs first on odd ones: neither side always gets the warmer box
                    for side in (("mmrec", "mrs") if seed % 2 == 0 else ("mrs", "mmrec")):
                        if (a.name, model, side, seed) in load_results(results):
                            continue
                        check_export(a.data, data_root / a.name, a.name, stores)  # refuse on any difference
                        r = run_one(a, model, side, seed, src, data_root)
                        r.update(dataset=a.name, model=model, side=side, seed=seed)
                        with open(results, "a") as f:
                            f.write(json.dumps(r) + "\n")
                        msg = r.get("error") or (f"test R@20 {r['test']['recall@20']:.4f} best ep {r['best_epoch']}"
                                                 f"/{r['epochs_run']} median ep {statistics.median(r['epoch_s']):.3f}s")
                        print(f"{a.name} {model} {side} seed {seed}: {msg}", flush=True)
        print(report(load_results(results), a.name, a.models, a.seeds))
    except MrsError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
