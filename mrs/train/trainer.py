"""The training loop: Adam on BPR, validation every ``eval_every`` epochs, early stopping,
a resumable checkpoint each epoch, and the final test evaluation of the best epoch.

``run_train(cfg, out_dir)`` is the one entry point (``mrs train``, ``mrs compare`` and the sweep
all call it). A run directory holds::

    config.yaml    the full resolved TrainConfig
    curves.png     train loss and the validation metric per epoch
    last.pt        model + optimizer + RNG states + counters (rewritten atomically each epoch)
    best.pt        weights of the best validation epoch
    final.pt       weights of the train + valid refit, where train.final_fit made one (the model
                   whose test figures metrics.json reports; "final_weights" names the file)
    metrics.json   {"test": {slice: {metric: x}}, "valid": ..., "ci": ..., "n_queries": ...,
                    "best_epoch": n, "history": [...], "alpha": {...}}

Resuming (``resume=True``) restores every RNG, so an interrupted run continues to exactly the
weights and metrics an uninterrupted run reaches (tested in ``tests/train/test_trainer.py``).
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from mrs.config import read_yaml, save_config, to_dict
from mrs.data.prepared import PreparedDataset, load_prepared
from mrs.device import resolve_device
from mrs.errors import MrsError
from mrs.io import remove_stale_temps, write_json_atomic
from mrs.train import closed_form
from mrs.train.checkpoint import (BEST, FINAL, LAST, TrainState, load_checkpoint, load_weights,
                                  save_checkpoint, save_weights)
from mrs.train.config import TrainConfig, load_train_config
from mrs.train.data import TrainTriples, batch_indices, load_feature_stores_with_present, n_batches, train_triples
from mrs.train.distributed import Dist, grad_bytes, init_distributed, rank_device
from mrs.train.guards import check_divergence, check_splits, kept_message, run_dir

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return the trainer's own data-order generator (CPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


class Trainer:
    """Dataset, model, sampler and optimizer of one run, and its epochs. The constructor only
    stores its parts; :meth:`build` is the explicit step that reads data and caches."""

    def __init__(self, cfg: TrainConfig, ds: PreparedDataset, triples: TrainTriples, model: Any,
                 sampler: Any, generator: torch.Generator, device: torch.device):
        self.cfg, self.ds, self.triples, self.model = cfg, ds, triples, model
        self.sampler, self.generator, self.device = sampler, generator, device
        # closed-form models (pop, ease, ...) have no parameters and no epochs: mrs.train.closed_form
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr) if model.trains_by_gradient else None
        self._evaluators: dict = {}
        self.dist = Dist()  # single process unless run_train joined a torchrun job
        self.seq = None  # mrs.train.sequences.SequenceData when the user encoder is sequential

    @classmethod
    def build(cls, cfg: TrainConfig, generator: torch.Generator | None = None,
              device: torch.device | None = None, ds: PreparedDataset | None = None) -> "Trainer":
        """Load the prepared dataset and feature stores, build the model's artifacts (reading or
        writing ``data.cache_dir``) and the model. ``generator``: the data-order generator
        (default: seeded from ``train.seed``; :func:`run_train` passes the one ``seed_everything``
        returns)."""
        from mrs.models.config import build_artifacts, build_context, build_model
        from mrs.sampling import NegativeSampler

        device = device or resolve_device(cfg.train.device, key="train.device")
        if not cfg.data.dir:
            raise MrsError("config key 'data.dir' is empty: set it to a prepared dataset directory")
        generator = generator or torch.Generator().manual_seed(cfg.train.seed)
        ds = ds if ds is not None else load_prepared(cfg.data.dir)  # a view: the train+valid refit
        features, present = load_feature_stores_with_present(ds, cfg.data.features, cfg.data.fill)
        triples = train_triples(ds, device)
        ctx = build_context(cfg.model, n_users=ds.n_users, n_items=ds.n_items,
                            mode_cardinalities=ds.mode_cardinalities,
                            train_users=triples.users.cpu().numpy(), train_items=triples.items.cpu().numpy(),
                            features=features, present=present)
        build_artifacts(cfg.model, ctx, cache_dir(cfg.data.cache_dir, ds.root))
        model = build_model(cfg.model, ctx).to(device)
        tc = cfg.train
        sampler = NegativeSampler(triples.users.cpu(), triples.items.cpu(), ds.n_items, seed=tc.seed,
                                  strategy=tc.negatives, candidates=tc.n_candidates, pick=tc.hard,
                                  temperature=tc.temperature)
        tr = cls(cfg, ds, triples, model, sampler, generator, device)
        if not model.trains_by_gradient:
            closed_form.prepare(tr)  # the rows to fit on, checked against the model's options
        elif model.user_encoder.sequential:
            from mrs.train.sequences import SequenceData
            tr.seq = SequenceData(ds, cfg.model.seq_len, cfg.model.seq_ties, tc.seed)
        return tr

    # ---------------------------------------------------------------- one epoch
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the train triples; returns the mean loss and its parts."""
        if not self.model.trains_by_gradient:  # the closed-form fit is the one "epoch"
            return closed_form.fit_once(self)
        if self.seq is not None:  # sequential user encoder: next-item sequences, not BPR triples
            from mrs.train.sequences import train_epoch_seq
            return train_epoch_seq(self, epoch)
        t, model, tc = self.triples, self.model, self.cfg.train
        model.train()
        model.on_epoch_start(epoch, self.generator)
        sums: dict[str, float] = {}
        nb = n_batches(len(t), tc.batch_size)
        bar = tqdm(batch_indices(len(t), tc.batch_size, self.generator), total=nb,
                   desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False, dynamic_ncols=True,
                   disable=not self.dist.is_main)
        for step, idx in enumerate(bar):
            parts, w = self.train_step(idx, f"epoch {epoch + 1}, batch {step + 1}/{nb}", epoch)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * w
            if step % 20 == 0 and parts:
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
        return {k: v / nb for k, v in self.dist.reduce_sums(sums).items()}

    def train_step(self, idx: torch.Tensor, where: str = "step 1", epoch: int = 0) -> tuple[dict[str, float], float]:
        """One optimiser step on the train triples ``idx`` (the global batch): encode, sample
        negatives, loss on this rank's shard, backward, gradient sync, Adam. Returns the loss and
        its parts, and this rank's weight in the global mean (1 in one process). ``where`` names
        the step in errors. Call ``model.train()`` and ``on_epoch_start`` first, as
        :meth:`train_epoch` does. With a sequential user encoder, ``idx`` are training sequence
        rows (:func:`mrs.train.sequences.train_step_seq`)."""
        from mrs.models.base import Batch

        if self.seq is not None:
            from mrs.train.sequences import train_step_seq
            return train_step_seq(self, idx, where), 1.0

        t, model = self.triples, self.model
        idx = idx.to(self.device)
        users, pos, modes = t.users[idx], t.items[idx], t.modes[idx]
        emb = model.encode()  # one propagation serves the hard-negative scoring and the loss
        # what the model's loss needs: several uniform negatives (sampled softmax), one by
        # train.negatives (dynamic: M candidates scored by the current model under the
        # positive's modes), or none (full softmax)
        k = model.n_negatives()
        neg = (torch.randint(model.n_items, (1, k), generator=self.sampler.generator).to(self.device)
               if k > 1 and model.shared_negatives else  # one set for the whole step: (1, K)
               self.sampler.uniform(users, k) if k > 1 else
               self.sampler.sample(users, modes, model, emb) if k == 1 else None)
        # under torchrun: every rank drew the global batch and its negatives; keep this
        # rank's shard (mrs.train.distributed)
        sh = self.dist.shard(len(idx))
        w = self.dist.loss_weight(sh.stop - sh.start, len(idx))  # 1 in one process
        self.optimizer.zero_grad(set_to_none=True)
        parts: dict[str, float] = {}
        if sh.stop > sh.start:  # an empty shard (a last batch smaller than the world) adds nothing
            loss, parts = model.calculate_loss(
                Batch(users[sh], pos[sh], None if neg is None else neg if neg.shape[0] == 1 < len(idx)
                      else neg[sh], modes[sh]), emb)
            if not torch.isfinite(loss):
                raise MrsError(
                    f"loss is {loss.item()} at {where} (parts: {_fmt(parts)}); stopped. Lower train.lr "
                    f"or raise model.reg; {kept_message(epoch)}")
            (loss * w).backward()
            parts = {"loss": loss.item(), **{k: float(v) for k, v in parts.items()}}
        self.dist.sync_grads(model, f" at {where}")  # zeros stand in for an empty shard's gradients
        self.optimizer.step()
        return parts, w

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, split: str, ci: bool = True, query: str | None = None):
        """``EvalResult`` of full ranking on ``split`` for the current weights (encoder run once;
        queries, masks and slices built once per split). ``query`` overrides ``eval.query``;
        per-user queries on data with modes score with the expected context (mrs.train.queries)."""
        import dataclasses

        from mrs.eval import Evaluator
        from mrs.train.queries import user_query_mode_weights

        key = split if query is None else (split, query)
        if key not in self._evaluators:
            ecfg = self.cfg.eval if query is None else dataclasses.replace(self.cfg.eval, query=query)
            self._evaluators[key] = Evaluator(self.ds, split, ecfg)
        ev = self._evaluators[key]
        weights = None
        if ev.queries.kind == "user" and self.ds.mode_names and self.cfg.model.modes:
            weights = user_query_mode_weights(self.ds.mode_names, self.triples.modes,
                                              self.ds.mode_cardinalities, self.cfg.eval.request_modes)
        self.model.eval()
        if not self.model.trains_by_gradient:  # a resumed run or a sweep's test read fits here
            closed_form.fit_once(self)
        if self.seq is not None:  # queries read the history before the split
            self.model.user_encoder.set_history(self.seq.history(split))
        emb = self.model.encode()

        last: dict = {}

        def score_fn(users: torch.Tensor, modes: torch.Tensor, items: slice | None = None) -> torch.Tensor:
            # (B, n_items), or (B, C) for an item range (memory-bounded ranking). The queries of a
            # batch are folded once and reused for its item chunks: a sequential user encoder's
            # transformer runs once per query batch, not once per chunk.
            if not self.model.trains_by_gradient:  # closed form: no query rows, its own scores
                return self.model.full_sort_predict(users, modes, mode_weights=weights, items=items)
            if not (last and torch.equal(last["users"], users) and torch.equal(last["modes"], modes)):
                last.update(users=users, modes=modes, q=self.model.query(users, modes, emb, weights))
            item_emb = emb[1] if items is None else emb[1][items]
            return self.model.scorer.rank_all(last["q"], item_emb)

        if not self.dist.enabled:
            return ev(score_fn, device=self.device, ci=ci)
        t0 = time.perf_counter()
        topk = self.dist.rank_sharded(ev, score_fn, self.device)  # queries sharded, lists gathered
        res = ev.score(topk, ci=ci)
        res.info.update(rank_seconds=round(time.perf_counter() - t0, 3), world_size=self.dist.world_size)
        return res


def cache_dir(setting: str, dataset_root: Path) -> Path | None:
    """Where cacheable model inputs (FREEDOM's kNN graph) go: ``data.cache_dir`` when set;
    ``auto``: ``<dataset>/cache`` when the dataset directory is writable, else no cache (a
    read-only dataset works, the graph is rebuilt); ``none``: never cached."""
    import os

    if setting == "none":
        return None
    if setting != "auto":
        return Path(setting).expanduser()
    root = Path(dataset_root)
    if os.access(root, os.W_OK) or os.access(root / "cache", os.W_OK):
        return root / "cache"
    log.warning("%s is read-only: the item-item kNN graph is rebuilt, not cached", root)
    return None


def run_train(cfg: TrainConfig, out_dir: str | Path, logger: Any = None, resume: bool = False,
              evaluate_test: bool = True) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``; return (and write) ``metrics.json``'s content.

    ``resume=True`` continues from ``out_dir/last.pt`` when present (fresh start otherwise);
    ``evaluate_test=False`` (sweep trials) leaves the test split unread.
    """
    from mrs.tracking import NullLogger

    out = Path(out_dir)
    logger = logger or NullLogger()
    check_splits(cfg.data.dir, evaluate_test)  # no valid/test rows: fail now, not after training
    configure_process(cfg.train.num_threads, cfg.train.malloc)
    dist = init_distributed(cfg.train.device)  # a no-op outside torchrun
    try:
        generator = seed_everything(cfg.train.seed)
        device = rank_device(dist, resolve_device(cfg.train.device, key="train.device"))
        tr = Trainer.build(cfg, generator, device)  # data, features and model first: a bad config or dataset leaves no run dir
        tr.dist = dist
        if dist.enabled and tr.seq is not None:
            raise MrsError(f"model.user_encoder={cfg.model.user_encoder!r}: sequential training does not "
                           f"run under torchrun yet; train it in one process")
        if dist.enabled and tr.model.fusion.aux_reads_whole_batch:
            raise MrsError(f"model.fusion={cfg.model.fusion!r} with alignment (model.align_item / "
                           f"model.align_feature > 0): its terms compare the items of the whole batch, "
                           f"which a rank's shard does not have; train it in one process")
        if dist.enabled and getattr(tr.model.encoder, "aux_reads_whole_batch", False):
            raise MrsError(f"model.encoder={cfg.model.encoder!r}: its contrastive term is not a mean of per-row "
                           f"terms (in-batch negatives, or a sum over the batch), so a rank's shard would change "
                           f"it; train it in one process")
        dist.sparse_grads = cfg.train.sparse_grads
        if not dist.enabled:
            with run_dir(out, LAST), _run_lock(out):  # failing before a checkpoint removes the new run dir
                return _run_train_locked(tr, out, logger, resume, evaluate_test)
        log.info("distributed: world_size=%d backend=%s device=%s; global batch %d = %d per rank; "
                 "dense gradient all-reduce %.2f MiB per step", dist.world_size, dist.backend,
                 device, cfg.train.batch_size, -(-cfg.train.batch_size // dist.world_size),
                 grad_bytes(tr.model) / 2**20)
        dist.broadcast_params(tr.model)
        if not dist.is_main:   # rank 0 alone writes files and talks to W&B
            return _run_train_locked(tr, out, NullLogger(), resume, evaluate_test)
        with run_dir(out, LAST), _run_lock(out):
            return _run_train_locked(tr, out, logger, resume, evaluate_test)
    finally:
        dist.close()


@contextlib.contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """One writer per run directory: a second process (say a resumed job while the first still
    runs) would interleave checkpoints. ``flock`` is released by the OS if the process dies."""
    import fcntl

    with open(out / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MrsError(f"{out}: another process is training into this run directory") from None
        yield


# what a run writes atomically (``*.pt``: last, best and any other weights file)
RUN_FILES = ("*.pt", "metrics.json", "config.yaml", "per_query.parquet", "curves.png")


def _run_train_locked(tr: Trainer, out: Path, logger: Any, resume: bool,
                      evaluate_test: bool) -> dict[str, Any]:
    cfg, main = tr.cfg, tr.dist.is_main
    _check_run_dir(cfg, out, resume)
    if main:  # this process holds the run's lock: a killed writer's temporaries are ours to remove
        for p in remove_stale_temps(out, RUN_FILES):
            log.info("removed %s, left by a killed write", p)
    tr.dist.barrier()  # every rank has checked the run dir before rank 0 writes into it
    if main:
        save_config(cfg, out / "config.yaml")
    tc = cfg.train
    state = TrainState()
    if resume and (out / LAST).is_file():
        state = load_checkpoint(out / LAST, tr.model, tr.optimizer, tr.generator,
                                {"sampler": tr.sampler})
        log.info("resuming %s after epoch %d (best %s=%.4f)", out, state.epoch,
                 tc.select_metric, state.best_value)
    logger.start(to_dict(cfg), out, name=cfg.wandb.name or out.name, group=cfg.wandb.group,
                 tags=cfg.wandb.tags)
    t0 = time.time() - sum(h.get("time_s", 0.0) for h in state.history)  # wall time across resumes
    epochs = tc.epochs if tr.model.trains_by_gradient else 1  # closed form: one fit
    try:
        while state.epoch < epochs and not state.stopped_early:
            epoch = state.epoch
            losses = tr.train_epoch(epoch)
            check_divergence(losses, epoch, tc.lr, kept_message(epoch))  # before this epoch's checkpoint
            row: dict[str, Any] = {"epoch": epoch + 1, **losses}
            row.update({f"alpha/{k}": v for k, v in tr.model.fusion_weights().items()})
            if (epoch + 1) % tc.eval_every == 0 or epoch + 1 == epochs:
                valid = tr.evaluate("valid", ci=False)
                value = _select(valid.metrics, tc.select_metric)
                row[f"valid/{tc.select_metric}"] = value
                if value > state.best_value:
                    state.best_value, state.best_epoch, state.bad_evals = value, epoch + 1, 0
                    if main:
                        save_weights(out / BEST, tr.model, epoch + 1)
                else:
                    state.bad_evals += 1
                    state.stopped_early = 0 < tc.patience <= state.bad_evals
            row["time_s"] = time.time() - t0 - sum(h["time_s"] for h in state.history)
            state.history.append(row)
            state.epoch = epoch + 1
            if main:
                save_checkpoint(out / LAST, tr.model, tr.optimizer, state, tr.generator,
                                {"sampler": tr.sampler})
            if tr.dist.enabled:
                log.info("%s", tr.dist.comm_summary())
            logger.log_epoch(epoch + 1, {k: v for k, v in row.items() if k != "epoch"})
            log.info("epoch %d %s", epoch + 1, _fmt(row))
        tr.dist.barrier()  # best.pt is written before any rank reloads it
        metrics = _final_metrics(tr, out, state, evaluate_test)
        if not main:
            return metrics
        write_json_atomic(out / "metrics.json", metrics)
        from mrs.train.plots import plot_history

        logger.log_image("curves", plot_history(state.history, tc.select_metric, out / "curves.png"))
        logger.log_summary(metrics)
        _log_slice_table(logger, metrics)
    finally:
        logger.finish()
    return metrics


def _final_metrics(tr: Trainer, out: Path, state: TrainState, evaluate_test: bool) -> dict:
    """The one path that turns a finished training into a run's figures (``mrs train``,
    ``mrs compare`` and, through :func:`evaluate_checkpoint`, ``mrs sweep``): reload the best
    epoch's weights; valid metrics with them; with ``evaluate_test``, the final fit (the train +
    valid refit where ``train.final_fit`` says so, saved as ``final.pt``, else the best epoch's
    weights) read on test once. ``metrics.json["final_weights"]`` names the weights file whose
    test figures are reported, which ``mrs export`` exports."""
    if state.best_epoch < 0:
        raise MrsError(f"{out}: no validation ran (train.epochs={tr.cfg.train.epochs}, "
                       f"train.eval_every={tr.cfg.train.eval_every})")
    from mrs.eval import metrics_json

    from mrs.train.refit import refit_trainer, wants_refit

    load_weights(out / BEST, tr.model)
    refit = evaluate_test and wants_refit(tr.cfg.train.final_fit, tr.ds)
    final = refit_trainer(tr, state.best_epoch) if refit else tr
    if refit and tr.dist.is_main:
        save_weights(out / FINAL, final.model, state.best_epoch)
    trainers = {"test": final, "valid": tr}
    results = {"test": final.evaluate("test")} if evaluate_test else {}
    results["valid"] = tr.evaluate("valid")
    by_query = _both_query_kinds(trainers, out, results)
    extra = {"final_weights": FINAL if refit else BEST} if evaluate_test else {}
    if refit:
        extra["refit"] = final.refit_info
    if tr.seq is not None:  # query users with no earlier interaction: counted, not dropped
        extra["sequence"] = {"users_without_history": {s: trainers[s].seq.n_empty.get(s, 0) for s in results},
                             "train_sequences": len(tr.seq.train)}
    return metrics_json(results, by_query=by_query, final_fit="train+valid" if refit else "train",
                        **extra, best_epoch=state.best_epoch,
                        select_metric=tr.cfg.train.select_metric, best_valid=state.best_value,
                        epochs_run=state.epoch, stopped_early=state.stopped_early,
                        alpha=tr.model.fusion_weights(), device=str(tr.device),
                        train_time_s=sum(h["time_s"] for h in state.history), history=state.history)


def _both_query_kinds(trainers: dict[str, Trainer], out: Path, results: dict) -> dict:
    """Both query kinds, labelled (``by_query`` in metrics.json), and every run's per-query
    values in ``per_query.parquet`` (see :mod:`mrs.train.queries`). ``trainers``: the trainer
    whose model each split is read with (test: the train+valid refit, when there is one)."""
    from mrs.train import queries as qk

    tr = trainers["valid"]
    primary = next(iter(results.values())).info["query"]
    everything = {(primary, split): r for split, r in results.items()}
    for kind in qk.other_kinds(primary, bool(tr.ds.mode_names), tr.cfg.eval.both_queries):
        for split in results:
            everything[(kind, split)] = trainers[split].evaluate(split, query=kind)
    users = {(k, s): (trainers[s]._evaluators[s] if k == primary else trainers[s]._evaluators[(s, k)]).queries.users
             for k, s in everything}
    if tr.dist.is_main:  # under torchrun every rank evaluates (gathered lists), rank 0 writes
        qk.write_per_query(out / "per_query.parquet", qk.per_query_frame(everything, users))
    return qk.by_query_json(everything)


def evaluate_checkpoint(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """The test figures of a run trained with ``evaluate_test=False`` (a sweep's selected
    trial), through the same path as :func:`run_train`'s (:func:`_final_metrics`: the refit
    where ``train.final_fit`` says so, ``final.pt``, both query kinds, ``per_query.parquet``),
    so the figure equals what ``mrs train`` reports for the same config and seed. Rewrites
    ``metrics.json``; test is read once."""
    if split != "test":
        raise MrsError(f"evaluate_checkpoint: split {split!r}; only a run's final test is read here")
    run = Path(run_dir)
    mpath = run / "metrics.json"
    if not mpath.is_file():
        raise MrsError(f"{mpath}: not found (is {run} a finished `mrs train` run directory?)")
    old = json.loads(mpath.read_text())
    cfg = load_train_config(run / "config.yaml")
    configure_process(cfg.train.num_threads, cfg.train.malloc)
    tr = Trainer.build(cfg, seed_everything(cfg.train.seed))
    state = TrainState(epoch=old["epochs_run"], best_value=old["best_valid"], best_epoch=old["best_epoch"],
                       stopped_early=old["stopped_early"], history=old["history"])
    metrics = _final_metrics(tr, run, state, evaluate_test=True)
    write_json_atomic(mpath, metrics)
    return metrics


def _check_run_dir(cfg: TrainConfig, out: Path, resume: bool) -> None:
    """Refuse to mix runs: a non-empty run dir needs --resume and the same config."""
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    if not resume:
        raise MrsError(f"{out}: already holds a run; pass --resume to continue it, or choose "
                       f"another --out")
    diff = config_difference(saved, cfg)
    if diff:
        raise MrsError(f"{saved}: resuming with a different config ({diff}); use a new --out")


# Keys a run may change without changing what it computes: a longer budget on resume, the
# tracker, and the CPU thread count (a speed setting).
_RESULT_NEUTRAL = {"train": ("epochs", "patience", "num_threads")}


def config_difference(saved: Path, cfg: TrainConfig) -> str | None:
    """``None`` when the run whose ``config.yaml`` is ``saved`` was configured as ``cfg`` (up to
    the result-neutral keys: epochs, patience, thread count, W&B), else the first differing key as
    ``key: old -> new`` (``"no config.yaml"`` when the run has none). A resumed run and a finished
    run that ``mrs compare`` reuses both pass through here, so a reused figure is always the
    configured model's."""
    if not saved.is_file():
        return "no config.yaml"
    old, new = read_yaml(saved), to_dict(cfg)
    with contextlib.suppress(MrsError):  # keys added to mrs since the run started take their defaults
        old = to_dict(load_train_config(base=old))
    for d in (old, new):
        d.pop("wandb", None)
        for section, keys in _RESULT_NEUTRAL.items():
            for k in keys:
                d.get(section, {}).pop(k, None)
    return None if old == new else _first_diff(old, new)


def _first_diff(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_diff(a.get(k), b.get(k), f"{prefix}{k}.")
    return f"{prefix.rstrip('.')}: {a!r} -> {b!r}"


def _select(metrics: dict, name: str) -> float:
    try:
        v = metrics["all"][name]
        v = float("nan") if v is None else float(v)
    except KeyError:
        have = ", ".join(metrics.get("all", {}))
        raise MrsError(f"config key 'train.select_metric': {name!r} not computed "
                       f"(have: {have}); check eval.ks and eval.metrics") from None
    return v if math.isfinite(v) else float("-inf")


def _log_slice_table(logger: Any, metrics: dict) -> None:
    split = "test" if "test" in metrics else "valid"
    names = sorted({m for s in metrics[split].values() for m in s})
    rows = [[s, *[metrics[split][s].get(m) for m in names]] for s in metrics[split]]
    logger.log_table(f"{split}_slices", ["slice", *names], rows)


def configure_process(num_threads: int = 0, malloc: str = "mmap") -> None:
    """The process-wide settings of a training run, in one explicit start-up call of
    :func:`run_train` (never from a constructor): torch's CPU threads (0 keeps torch's default)
    and glibc's allocator thresholds (``malloc``, see :func:`keep_freed_memory`)."""
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    keep_freed_memory(heap_only=malloc == "heap")


def keep_freed_memory(heap_only: bool = False) -> None:
    """Stop glibc from handing large freed blocks back to the OS after every step.

    A propagation step allocates and frees several ``(U, r)`` temporaries of a few MB; above
    glibc's mmap threshold each one is mmap'ed, page-faulted in and unmapped again, which cost
    ~30% of a LightGCN step on Sports on 2 CPU cores (experiments/benchmarks). Raising the mmap
    and trim thresholds keeps them in the heap for reuse. No-op off glibc.

    The threshold cannot go above 32 MiB, so on a full-size graph (H&M's 1.03M rows × 64 floats
    = 264 MB per temporary) every temporary is still mmap'ed: ``heap_only`` (``train.malloc:
    heap``) sets ``M_MMAP_MAX = 0`` so they come from the heap too and are reused
    (``experiments/benchmarks/bench_malloc.py`` measures time, page faults and peak RSS; freed
    blocks inside the heap are not returned to the OS, so peak RSS can be higher).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: 32 MiB, the largest glibc accepts
    libc.mallopt(-1, 1 << 30)   # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    if heap_only:
        libc.mallopt(-4, 0)     # M_MMAP_MAX: no block is mmap'ed (a process-wide, one-way switch)


def _fmt(d: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())
