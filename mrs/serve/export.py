r"""``mrs export RUN_DIR --out MODEL_DIR``: freeze a trained run into what scoring needs, and
nothing that training needs.

The model directory (self-contained: no dataset directory is read when serving)::

    manifest.json        format, counts, modes (labels, train counts), user encoder, content
                         projection, the source run's config / metrics / git commit, and the
                         sha256 of every file below
    factors.safetensors  user (U, R), item (I, R): the encoder's outputs (graph propagation done
                         once, late-fusion score scale folded into the user rows; for a
                         sequential user encoder the user rows are each user's state after
                         their last seq_len items over all splits, and seq.* holds the
                         transformer: :mod:`mrs.serve.sequential`); mode.<name>
                         (n, R): CP factors; item_counts (I,), item_counts_by_mode0 (n_0, I):
                         train frequencies (popularity fallback); seen_indptr (U+1,),
                         seen_indices (nnz,): every item each user has (all splits);
                         content_mean (D,), content_w (D, R), content_b (R,): the content
                         projection, when the run used feature stores
    user_ids.txt, item_ids.txt   raw ids, one per line, in index order

The content projection maps a new item's unit-normalised modality features ``x = [x_1 ‖ x_2 ‖ …]``
to an item factor, ``i = (x − μ) W + b``: ridge regression of the served item factors on the
features of items with train interactions, ``W = (X_cᵀX_c + λI)⁻¹ X_cᵀ(Y − b)``, ``b = mean(Y)``,
with λ chosen on a held-out 10% of those items (mean squared error). It is a map into the
served factor space learned from the model's own warm items, not the model's internal fusion
path: it works the same for every encoder (graph propagation of a new node would need its
edges, which a cold item does not have).

Written to a temporary sibling directory and renamed at the end (``mrs.io.atomic_dir``), so a kill
(or a full disk) during export leaves no half model directory. ``index/<spec>.faiss``, the ANN
index (``mrs export --index``), is written inside it and hashed in the manifest like every file.

``--out`` follows ``mrs prepare``'s rules (``mrs.prep.outdir``): it must be new, empty or an
earlier model directory (replaced only with ``--force``, keeping any file export did not write),
and it may not be, be inside, or contain the run. Only a finished run (``metrics.json``) is
exported unless ``allow_unfinished``; the weights' checksum is verified on load
(``mrs.train.checkpoint``).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrs.errors import MrsError
from mrs.io import atomic_dir, chmod_default, file_checksum, write_json_atomic
from mrs.serve.index import AnnIndex, IndexSpec

log = logging.getLogger(__name__)

FORMAT = "mrs-model/1"
FACTORS = "factors.safetensors"
MANIFEST = "manifest.json"
USER_IDS, ITEM_IDS = "user_ids.txt", "item_ids.txt"
INDEX_DIR = "index"
RIDGE_LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0)


def export_run(run_dir: str | Path, out: str | Path, force: bool = False, index: IndexSpec | None = None,
               allow_unfinished: bool = False) -> Path:
    """Export ``run_dir`` to the model directory ``out``; return it. The exported model is the
    one whose test figures the run reports: ``metrics.json["final_weights"]`` (``final.pt``,
    the train + valid refit, where ``train.final_fit`` made one; else ``best.pt``).
    ``index``: also build that ANN index into it; ``allow_unfinished``: export a run without
    ``metrics.json`` (killed or still training) with a warning."""
    from mrs.prep.outdir import check_out
    from mrs.train.config import load_train_config

    run, out = Path(run_dir), Path(out)
    metrics = read_metrics(run)
    for name in ("config.yaml", final_weights(metrics)):
        if not (run / name).is_file():
            raise MrsError(f"{run / name}: not found (is {run} a finished `mrs train` run directory?)")
    if not (run / "metrics.json").is_file():
        if not allow_unfinished:
            raise MrsError(f"{run}: an unfinished run (no metrics.json: killed, failed or still "
                           f"training); resume it, or pass --allow-unfinished to export its best.pt")
        log.warning("%s: an unfinished run (no metrics.json); exporting its best.pt anyway", run)
    carry = check_out(out, [run], command="mrs export", owned_by=model_owned, overwrite=force,
                      flag="--force", kept="your other files")
    cfg = load_train_config(run / "config.yaml")
    from mrs.train.closed_form import check_export

    check_export(cfg)  # closed-form models: only those whose scores are a factor product
    tensors, meta = _collect(cfg, run, metrics)
    with atomic_dir(out, carry=carry) as tmp:
        write_model_dir(tmp, tensors, meta, index)
    log.info("exported %s -> %s (%d users, %d items)", run, out, meta["n_users"], meta["n_items"])
    return out


def read_metrics(run: Path) -> dict[str, Any]:
    """``run``'s ``metrics.json`` (``{}`` for an unfinished run), read once per export."""
    mpath = run / "metrics.json"
    if not mpath.is_file():
        return {}
    try:
        metrics = json.loads(mpath.read_text())
    except ValueError:
        raise MrsError(f"{mpath}: not a metrics.json (unreadable JSON)") from None
    if not isinstance(metrics, dict):
        raise MrsError(f"{mpath}: not a metrics.json (not a JSON object)")
    return metrics


def final_weights(metrics: dict[str, Any]) -> str:
    """The weights file whose test figures ``metrics`` reports (``best.pt`` for a run without
    one, e.g. unfinished or trained before ``final.pt`` existed)."""
    return str(metrics.get("final_weights", "best.pt"))


def _collect(cfg: Any, run: Path, metrics: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Rebuild the run's final model on CPU (on train + valid where it was refit there: its
    graph, popularity and seen items are the refit's), load its weights and read out every
    served array."""
    from mrs.data.prepared import SPLITS, load_prepared
    from mrs.eval.ranking import Csr
    from mrs.models.base import FUSIONS, USERS
    from mrs.train.checkpoint import FINAL, load_weights
    from mrs.train.refit import train_valid_view
    from mrs.train.trainer import Trainer

    if FUSIONS.get(cfg.model.fusion).embeds_sequences:  # the server's history encoder has no fusion
        raise MrsError(f"{run / 'config.yaml'}: model.fusion={cfg.model.fusion!r} embeds the input "
                       f"sequences itself, which mrs export cannot serve yet")
    wfile = final_weights(metrics)
    ds = load_prepared(cfg.data.dir)
    tr = Trainer.build(cfg, device=torch.device("cpu"), ds=train_valid_view(ds) if wfile == FINAL else ds)
    epoch = load_weights(run / wfile, tr.model)  # weights only, checksum verified
    model, ds = tr.model.eval(), tr.ds
    if not model.trains_by_gradient:  # closed form (global pop): refit, scores = ones · counts
        from mrs.train.closed_form import fit_once

        fit_once(tr)
        user, item = (torch.from_numpy(a) for a in model.export_factors())
    else:
        with torch.no_grad():
            user, item = model.encode()  # (U, R), (I, R): propagation once, late-fusion scale included
    factors = [f.detach() for f in getattr(getattr(model, "scorer", None), "factors", [])]
    user, item = user.detach().contiguous(), item.detach().contiguous()  # MF returns its parameters
    t: dict[str, np.ndarray] = {"user": user.numpy(), "item": item.numpy()}
    sequential: dict[str, Any] | bool = False
    if getattr(USERS.get(cfg.model.user_encoder), "sequential", False):  # user rows = states
        from mrs.serve.sequential import export_sequential

        t["user"], weights, sequential = export_sequential(model, ds, cfg, item)
        t.update(weights)
    modes = []
    train = ds.split("train")
    names = ds.mode_names if factors else []
    for j, name in enumerate(names):
        t[f"mode.{name}"] = factors[j].numpy()
        counts = np.bincount(train[name].to_numpy(), minlength=len(factors[j]))
        modes.append({"name": name, "labels": [str(x) for x in ds.meta["modes"][name]["labels"]],
                      "train_counts": counts.tolist()})
    t["item_counts"] = ds.item_train_counts().astype(np.float32)
    if names:
        key = train[names[0]].to_numpy().astype(np.int64) * ds.n_items + train["item"].to_numpy()
        n0 = len(factors[0])
        t["item_counts_by_mode0"] = np.bincount(key, minlength=n0 * ds.n_items).reshape(
            n0, ds.n_items).astype(np.float32)  # (n_0, I)
    inter = ds.interactions
    seen = Csr.from_pairs(inter["user"].to_numpy(), inter["item"].to_numpy(), ds.n_users)
    t["seen_indptr"], t["seen_indices"] = seen.indptr, seen.indices.astype(np.int32)
    content = None
    if cfg.data.features:
        from mrs.train.data import load_feature_stores

        feats = load_feature_stores(ds, cfg.data.features, cfg.data.fill)
        X = np.concatenate([_unit_rows(f.numpy()) for f in feats.values()], axis=1)  # (I, D)
        warm = t["item_counts"] > 0
        w, b, mu, lam, mse = fit_content_projection(X[warm], t["item"][warm], seed=cfg.train.seed)
        t["content_w"], t["content_b"], t["content_mean"] = w, b, mu
        content = {"modalities": [{"name": m, "dim": int(f.shape[1]), **_store_info(ds.root, m)}
                                  for m, f in feats.items()],
                   "ridge_lambda": lam, "holdout_mse": mse, "fitted_on_items": int(warm.sum())}
    from mrs.config import to_dict
    from mrs.tracking.provenance import git_state

    meta = {
        "format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "n_users": ds.n_users, "n_items": ds.n_items, "dim": int(user.shape[1]),
        "modes": modes, "user_encoder": cfg.model.user_encoder, "sequential": sequential,
        "content": content, "dataset": {"name": ds.name, "source": ds.meta.get("source")},
        "source": {"run_dir": str(run.resolve()), "config": to_dict(cfg),
                   "best_epoch": metrics.get("best_epoch", epoch), "weights": wfile,
                   "final_fit": metrics.get("final_fit", "train"),
                   "valid": metrics.get("valid", {}).get("all"),
                   "git": git_state(), "splits_in_seen": sorted(SPLITS)},
        "user_ids": [str(x) for x in ds.users.sort_values("user")["user_id"]],
        "item_ids": [str(x) for x in ds.items.sort_values("item")["item_id"]],
    }
    return t, meta


def _store_info(root: Path, name: str) -> dict[str, Any]:
    """Which encoder made a feature store (so a server can embed a new item's raw text)."""
    from mrs.features import read_meta, resolve_store

    meta = read_meta(resolve_store(root, name))
    return {"modality": meta.get("modality"), "encoder": meta.get("encoder"),
            "max_length": int(meta.get("max_length", 128))}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """As the model's own feature check: unit rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def fit_content_projection(X: np.ndarray, Y: np.ndarray, seed: int = 0, lambdas=RIDGE_LAMBDAS
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Ridge ``Y ≈ (X − μ) W + b`` (see the module docstring); λ picked on a 10% holdout.

    ``X (N, D)``, ``Y (N, R)`` -> ``W (D, R)``, ``b (R,)``, ``μ (D,)``, λ, holdout MSE."""
    if len(X) < 2:
        raise MrsError(f"content projection: {len(X)} items with train interactions; need at least 2")
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    rng = np.random.default_rng(seed)
    hold = rng.random(len(X)) < 0.1
    if hold.all() or not hold.any():
        hold = np.zeros(len(X), bool)
        hold[0] = True

    def fit(Xf: np.ndarray, Yf: np.ndarray, lam: float):
        mu, b = Xf.mean(0), Yf.mean(0)
        Xc = Xf - mu
        w = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ (Yf - b))  # (D, R)
        return w, b, mu

    errs = {}
    for lam in lambdas:
        w, b, mu = fit(X[~hold], Y[~hold], lam)
        errs[lam] = float((((X[hold] - mu) @ w + b - Y[hold]) ** 2).mean())
    lam = min(errs, key=errs.get)
    w, b, mu = fit(X, Y, lam)  # refit on every warm item with the chosen λ
    return w.astype(np.float32), b.astype(np.float32), mu.astype(np.float32), lam, errs[lam]


def model_owned(path: Path) -> set[str] | None:
    """Entries ``mrs export`` writes in a model directory, or ``None`` when ``path`` is not one."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return {MANIFEST, FACTORS, USER_IDS, ITEM_IDS, INDEX_DIR}


def write_model_dir(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any],
                    index: IndexSpec | None = None) -> None:
    """Write factors, id lists, the ``index`` when given, and the manifest (with sha256 of each
    file) into ``path``."""
    from safetensors.numpy import save_file

    meta = dict(meta)
    for key, name in (("user_ids", USER_IDS), ("item_ids", ITEM_IDS)):
        ids = meta.pop(key)
        bad = next((x for x in ids if "\n" in x or "\r" in x), None)
        if bad is not None:
            raise MrsError(f"{key}: raw id {bad!r} contains a line break; cannot export")
        (path / name).write_text("".join(f"{x}\n" for x in ids))
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path / FACTORS))
    chmod_default(path / FACTORS)  # safetensors creates it 0600 whatever the umask
    names = [FACTORS, USER_IDS, ITEM_IDS]
    files = {n: file_checksum([path / n]) for n in names}
    meta["checksum"] = file_checksum([path / n for n in sorted(names)])  # the model: factors and ids
    if index is not None:
        name = index.file(len(tensors["item"]))
        AnnIndex.build(tensors["item"], index).write(path / name)
        files[name] = file_checksum([path / name])
    meta["files"] = files
    write_json_atomic(path / MANIFEST, meta)
