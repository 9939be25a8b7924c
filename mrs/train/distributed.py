"""Data-parallel training over several processes with ``torch.distributed`` (``torchrun``).

    torchrun --standalone --nproc_per_node N -m mrs train --config ... --out RUN
    torchrun --nnodes M --node_rank K --rdzv_backend c10d --rdzv_endpoint HOST:PORT \\
             --nproc_per_node N -m mrs train ...          # multi-node: same command on every node

``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_distributed` joins the
process group with NCCL on GPUs (one GPU per local rank) and gloo on CPU. Without those
variables everything here is a no-op and training is the single-process loop.

What each rank does, per step of global batch ``G = train.batch_size``:

- every rank draws the same permutation and the same negatives for the whole global batch (the
  data-order generator and the sampler are seeded alike), then keeps its contiguous shard
  ``b_r ≈ G / N`` rows;
- every rank runs the encoder (graph propagation is replicated: data parallelism splits the
  batch, not the graph) and its shard's loss ``L_r``;
- the backward pass uses ``L_r · b_r / G`` and gradients are summed over ranks (all-reduce), so
  ``Σ_r ∇(L_r · b_r / G) = ∇ L_global`` exactly when the loss is a per-row mean (BPR, and L2 of
  the batch's rows / B) — the global-batch gradient of one process, up to float summation order;
- every rank takes the same Adam step, so parameters stay equal without being sent.

This is DistributedDataParallel's semantics; the gradients are all-reduced here rather than by
the ``nn.parallel.DistributedDataParallel`` wrapper because a recommender's step is not one
``forward()`` (encode, sample negatives with the encoded tables, then the loss), and because
the models' gradients are a few large embedding tables: one all-reduce per parameter tensor is
already a well-sized bucket. Volume per step: ``Σ numel · 4`` bytes ≈ ``(U + I) · d · 4``,
of which a ring all-reduce sends ``2 (N − 1) / N`` per rank (logged at start).

Evaluation: each rank ranks a contiguous shard of the queries, the top-k lists are gathered on
every rank (so early-stopping decisions agree), and only rank 0 writes files and logs.

A fusion whose own loss terms compare the batch's items with each other (gated fusion's
in-batch InfoNCE and correlation alignment) would train a different objective per shard, so
that combination is refused with a one-line error rather than run inexactly. A shard that is
empty (the last global batch smaller than the world) contributes no loss and still joins the
all-reduce. The train + valid refit (``train.final_fit``) runs distributed the same way.

Scope: ``mrs train`` (and ``run_train`` called inside a process group the caller joined, as
``tests/train/ddp_worker.py`` does); ``mrs compare`` and ``mrs sweep`` run one process each.
A failed peer surfaces as torchrun's report (rank, exit code or signal) or, on a rank blocked in
the gradient all-reduce, as a one-line ``MrsError``; ``--resume`` continues from ``last.pt``.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from mrs.errors import MrsError

log = logging.getLogger(__name__)


@dataclass
class Dist:
    """This process's place in the job; the default is a single process (everything a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    comm_bytes: int = 0          # bytes each rank sent for gradients so far (ring algorithms)
    dense_bytes: int = 0         # size of the gradient tensors synced so far (what a dense all-reduce reduces)
    comm_seconds: float = 0.0    # wall time spent in the gradient all-reduce
    steps: int = 0
    owns_group: bool = False     # joined by init_distributed (so close() leaves it)
    sparse_grads: bool = False   # train.sparse_grads: send only touched rows when that is smaller
    sparse_steps: int = 0        # tensors sent as rows rather than dense
    _params: list = field(default_factory=list, repr=False)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ----------------------------------------------------------------- training
    def shard(self, n: int) -> slice:
        """This rank's contiguous rows of a global batch of ``n`` (``torch.tensor_split`` sizes)."""
        if not self.enabled:
            return slice(0, n)
        q, r = divmod(n, self.world_size)
        start = self.rank * q + min(self.rank, r)
        return slice(start, start + q + (self.rank < r))

    def loss_weight(self, n_local: int, n_global: int) -> float:
        """``b_r / G``: summing the ranks' gradients of ``L_r · b_r / G`` gives the global mean's."""
        return n_local / n_global if self.enabled else 1.0

    def sync_grads(self, model: torch.nn.Module, where: str = "") -> None:
        """Sum every trainable parameter's gradient over the ranks, in place (zeros stand in for
        a gradient a rank did not produce, so every rank reduces the same tensors)."""
        if not self.enabled:
            return
        t0 = time.perf_counter()
        for p in model.parameters():
            if not p.requires_grad:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            try:
                size = p.grad.numel() * p.grad.element_size()
                self.dense_bytes += size
                if self.sparse_grads and p.grad.dim() == 2 and self._sync_rows(p.grad):
                    continue
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                # ring all-reduce: reduce-scatter + all-gather, 2 (N - 1) / N of the tensor per rank
                self.comm_bytes += size * 2 * (self.world_size - 1) // self.world_size
            except (RuntimeError, dist.DistBackendError) as e:
                raise MrsError(f"rank {self.rank}: gradient all-reduce failed{where} (a peer process "
                               f"died or the network dropped: {str(e).splitlines()[0]}); rerun the "
                               f"same torchrun command with --resume to continue from the last "
                               f"complete checkpoint") from None
        self.comm_seconds += time.perf_counter() - t0
        self.steps += 1

    def _sync_rows(self, grad: torch.Tensor) -> bool:
        """Row-sparse sum of an embedding table's gradient ``(n, d)``: MF touches only the batch's
        rows, so each rank sends ``(rows, values)`` of its non-zero rows (all-gather) instead of
        the dense table; every rank adds them up. Used only when the gathered rows are smaller
        than the dense tensor (the ranks agree: they all see the same counts); returns whether
        it was used."""
        rows = grad.abs().sum(1).nonzero().squeeze(1)                    # (r,) touched rows
        counts = [torch.zeros(1, dtype=torch.long, device=grad.device) for _ in range(self.world_size)]
        dist.all_gather(counts, torch.tensor([rows.numel()], device=grad.device))
        counts_l = [int(c) for c in counts]
        d = grad.shape[1]
        row_bytes = d * grad.element_size() + 8
        if max(counts_l) * self.world_size * row_bytes >= grad.numel() * grad.element_size():
            return False
        m = max(counts_l)
        idx = torch.zeros(m, dtype=torch.long, device=grad.device)
        val = torch.zeros(m, d, dtype=grad.dtype, device=grad.device)
        idx[:rows.numel()], val[:rows.numel()] = rows, grad[rows]
        idxs = [torch.empty_like(idx) for _ in range(self.world_size)]
        vals = [torch.empty_like(val) for _ in range(self.world_size)]
        dist.all_gather(idxs, idx)
        dist.all_gather(vals, val)
        grad.zero_()
        for c, i, v in zip(counts_l, idxs, vals):   # rank order: the same sum on every rank
            grad.index_add_(0, i[:c], v[:c])
        self.comm_bytes += m * row_bytes * (self.world_size - 1)   # ring all-gather: N - 1 pieces
        self.sparse_steps += 1
        return True

    def reduce_sums(self, sums: dict[str, float]) -> dict[str, float]:
        """Sum per-rank accumulators over the ranks (one small all-reduce per epoch), so the
        logged loss is the global batch's, not rank 0's shard's."""
        if not self.enabled:
            return sums
        # a rank that saw only empty shards has no parts: reduce the union of the ranks' keys
        names: list = [None] * self.world_size
        dist.all_gather_object(names, sorted(sums))
        keys = sorted(set().union(*names))
        if not keys:
            return sums
        t = torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64)
        if self.backend == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return dict(zip(keys, t.cpu().tolist()))

    def broadcast_params(self, model: torch.nn.Module) -> None:
        """Start every rank from rank 0's weights (equal seeds already agree on CPU; this also
        covers a nondeterministic initialisation on a GPU)."""
        if self.enabled:
            for t in list(model.parameters()) + list(model.buffers()):
                if not t.is_sparse:
                    dist.broadcast(t.data, src=0)

    def comm_summary(self) -> str:
        steps = max(self.steps, 1)
        sparse = f", {self.sparse_steps} tensors sent as touched rows" if self.sparse_grads else ""
        return (f"gradient sync: {self.dense_bytes / steps / 2**20:.3f} MiB of gradients per step, "
                f"{self.comm_bytes / steps / 2**20:.3f} MiB sent per rank per step, {self.steps} steps, "
                f"{self.comm_seconds:.2f} s{sparse}")

    # ----------------------------------------------------------------- evaluation
    def rank_sharded(self, evaluator, score_fn, device) -> np.ndarray:
        """Top-k lists ``(Q, K)`` of all the evaluator's queries: each rank ranks its shard, the
        shards are gathered on every rank. The sampled protocol's draws depend on the batch
        order, so it is ranked whole on every rank."""
        if not self.enabled or evaluator.cfg.protocol == "sampled":
            return evaluator.rank(score_fn, device)
        from mrs.eval.ranking import accepts_items, rank_topk

        q = evaluator.queries
        sl = self.shard(len(q))
        plan = evaluator.plan(device, chunkable=accepts_items(score_fn))
        part = rank_topk(score_fn, q.users[sl], q.modes[sl], evaluator.k_max, seen=q.seen,
                         batch_size=plan.query_batch, device=device, n_items=evaluator.n_items,
                         item_chunk=plan.item_chunk)
        parts: list = [None] * self.world_size
        dist.all_gather_object(parts, part)
        return np.concatenate(parts, 0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this run joined it (a caller's own group is kept)."""
        if self.enabled and self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_setting: str = "auto", timeout_s: float = 1800.0) -> Dist:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), else a single process.

    Backend: NCCL when this rank uses a GPU (``train.device`` auto/cuda with CUDA present), gloo
    otherwise. A group the caller already joined is used as it is (and left open). Ranks other
    than 0 log warnings only."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_available():
        raise MrsError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    gpu = device_setting != "cpu" and torch.cuda.is_available()
    backend = "nccl" if gpu else "gloo"
    if gpu:
        torch.cuda.set_device(local)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    else:
        backend = str(dist.get_backend())
    d = Dist(rank=rank, world_size=world, local_rank=local, backend=backend, owns_group=owns)
    if not d.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    return d


def rank_device(d: Dist, device: torch.device) -> torch.device:
    """One GPU per local rank under NCCL; the resolved device otherwise."""
    if d.enabled and device.type == "cuda":
        return torch.device("cuda", d.local_rank)
    return device


def grad_bytes(model: torch.nn.Module) -> int:
    """Bytes of the trainable parameters, i.e. of one step's dense gradient all-reduce."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
