"""All graph building in one place: the user-item bipartite graph, FREEDOM's per-epoch edge
pruning, the frozen item-item kNN graphs (cached on disk), and LATTICE's weighted kNN graphs and
row-normalised user-item graph.

Every graph is a ``torch.sparse_csr_tensor`` (never dense), built from edge lists with vectorised
torch ops (never a Python loop over nodes). Node order of the bipartite graph: users ``0..U-1``,
then items ``U..U+I-1``.

The normalised adjacency of LightGCN (He et al., 2020) is

.. math::
    \\hat{A} = D^{-1/2} A D^{-1/2}, \\qquad
    A = \\begin{pmatrix} 0 & R \\\\ R^\\top & 0 \\end{pmatrix}

with :math:`R \\in \\{0,1\\}^{U \\times I}` the train interactions and :math:`D` the degrees.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from mrs.errors import MrsError
from mrs.io import atomic_path
from mrs.knn import KnnSearch, ivf_knn_edges

log = logging.getLogger(__name__)


def _as_long(x: np.ndarray | Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).long()


def unique_edges(users: np.ndarray | Tensor, items: np.ndarray | Tensor, n_items: int) -> tuple[Tensor, Tensor]:
    """Deduplicated (user, item) edges (repeat purchases count once), sorted by user then item."""
    keys = torch.unique(_as_long(users) * n_items + _as_long(items))  # sorted
    return keys // n_items, keys % n_items


def to_csr(rows: Tensor, cols: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """COO edge list -> coalesced CSR (duplicates summed)."""
    with warnings.catch_warnings():  # torch's "sparse support is in beta" notices
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, shape, check_invariants=False)
        return coo.coalesce().to_sparse_csr()


def csr_from_parts(crow: Tensor, col: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    """Wrap CSR parts as a sparse tensor (no copy, no invariant check: they came from ``to_csr``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def transpose(a: Tensor) -> Tensor:
    """CSR transpose (as CSR), for the backward pass of a non-symmetric graph."""
    coo = a.to_sparse_coo().coalesce()
    r, c = coo.indices()
    return to_csr(c, r, coo.values(), (a.shape[1], a.shape[0]))


def norm_weights(users: Tensor, items: Tensor, n_users: int, n_items: int) -> Tensor:
    """Edge weights ``1 / sqrt(d_u · d_i)`` of ``D^-1/2 A D^-1/2`` for deduplicated edges (E,)."""
    deg_u = torch.bincount(users, minlength=n_users).float()
    deg_i = torch.bincount(items, minlength=n_items).float()
    return (deg_u[users] * deg_i[items]).clamp(min=1).rsqrt()


def bipartite_blocks(users: Tensor, items: Tensor, n_users: int, n_items: int) -> tuple[Tensor, Tensor]:
    """The two non-zero blocks of the symmetric-normalised bipartite adjacency
    ``D^-1/2 A D^-1/2``: ``R̂ (U, I)`` and ``R̂ᵀ (I, U)`` as CSR. Isolated nodes (cold items) get an
    empty row, so their propagated embedding beyond layer 0 is zero.

    Propagating ``users <- R̂ items``, ``items <- R̂ᵀ users`` is the same product as the full
    adjacency without concatenating and splitting ``(U+I, r)`` tensors every step, and ``R̂ᵀ``
    doubles as the precomputed transpose for the backward pass.
    """
    users, items = users.long(), items.long()
    w = norm_weights(users, items, n_users, n_items)
    return to_csr(users, items, w, (n_users, n_items)), to_csr(items, users, w, (n_items, n_users))


class SparseMM(torch.autograd.Function):
    """``A @ x`` with the backward ``A^T @ g`` using a precomputed transpose (for symmetric ``A``,
    ``A`` itself): about 2x faster on CPU than autograd through a CSR matmul, which transposes
    the sparse matrix in every backward pass."""

    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, None, ctx.a_t @ grad


def spmm(a: Tensor, x: Tensor, a_t: Tensor | None = None) -> Tensor:
    """Differentiable ``a @ x`` (gradient for ``x`` only); ``a_t`` defaults to ``a`` (symmetric)."""
    return SparseMM.apply(a, a if a_t is None else a_t, x)


def edge_keep_probs(users: Tensor, items: Tensor, n_users: int, n_items: int) -> Tensor:
    """FREEDOM's degree-sensitive sampling weights ``1 / sqrt(d_u · d_i)`` per edge (E,):
    edges between low-degree nodes are kept more often."""
    return norm_weights(users, items, n_users, n_items)


def sample_edges(weights: Tensor, n_keep: int, generator: torch.Generator | None = None) -> Tensor:
    """Indices of ``n_keep`` edges drawn without replacement with probability ∝ ``weights``.

    Same distribution as ``torch.multinomial(weights, n_keep)`` (sequential draws), computed as
    the ``n_keep`` smallest ``Exp(1) / w`` keys (Efraimidis-Spirakis), one vectorised top-k.
    """
    if n_keep >= weights.numel():
        return torch.arange(weights.numel())
    u = torch.rand(weights.shape, generator=generator).clamp_(min=1e-12)
    keys = -torch.log(u) / weights.clamp(min=1e-12)
    return torch.topk(keys, n_keep, largest=False, sorted=False).indices


def content_affinity(users: Tensor, items: Tensor, n_users: int, features: Tensor) -> Tensor:
    """GRCN-style edge affinity: cosine between an item's content and its user's content
    profile (mean content of the user's train items), per edge (E,), in [-1, 1]."""
    x = torch.nn.functional.normalize(features.float(), dim=1)  # (I, d)
    prof = torch.zeros(n_users, x.shape[1]).index_add_(0, users, x[items])  # (U, d)
    prof = torch.nn.functional.normalize(prof, dim=1)
    return (prof[users] * x[items]).sum(1)


def affinity_keep_weights(affinity: Tensor, temperature: float = 0.1) -> Tensor:
    """Keep weights ``exp((a - 1) / τ)`` from affinities in [-1, 1]: ∝ softmax(a / τ), so edges
    that contradict the user's content profile (GRCN prunes negative ones) are rarely kept."""
    return torch.exp((affinity - 1.0) / temperature)


def pruned_blocks(users: Tensor, items: Tensor, n_users: int, n_items: int, weights: Tensor,
                  drop: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Keep ``(1 - drop)`` of the edges, sampled ∝ ``weights``; the renormalised kept graph as
    :func:`bipartite_blocks`."""
    n_keep = max(1, int(round(users.numel() * (1.0 - drop))))
    keep = sample_edges(weights, n_keep, generator)
    return bipartite_blocks(users[keep], items[keep], n_users, n_items)


# --------------------------------------------------------------------- item-item kNN graph

KNN_MEMORY = 256 << 20  # bytes of one similarity block: bounds memory whatever the item count


def knn_edges(features: Tensor, k: int, present: Tensor | None = None, include_self: bool = True,
              max_bytes: int = KNN_MEMORY, rows: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """The ``k`` most cosine-similar items of every present item, among present items only.

    Returns ``(row, col)`` (E,) long with ``E = n_present · k'`` (``k' = min(k, n_present)``, one
    less without self). ``include_self``: FREEDOM's ``topk`` over the full similarity row, where
    an item is its own nearest neighbour (sim = 1); ``False`` masks the diagonal. Absent items
    (``present[i] = False``: no content in this modality) neither have nor are neighbours.

    Exact search in row blocks of ``max_bytes // (4 · n_present)`` rows: memory is the features
    plus one ``(block, n_present)`` similarity block, never ``I x I`` (MMRec issue #22).
    ``rows=(a, b)``: only the neighbours of present items ``a..b-1`` (to shard or time a part).
    """
    n = features.shape[0]
    present = torch.ones(n, dtype=torch.bool) if present is None else present.bool()
    idx = present.nonzero().squeeze(1)  # (P,) prepared ids of present items
    x = features if bool(present.all()) else features[idx]  # (P, d): no copy when all are present
    x = x.float()
    p = x.shape[0]
    k = min(k, p if include_self else p - 1)
    if k <= 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    inv = x.norm(dim=1).clamp(min=1e-12).reciprocal()  # (P,): cosine without a normalised copy
    block = max(1, int(max_bytes) // (4 * p))
    cols = []
    lo, hi = (rows[0], min(rows[1], p)) if rows is not None else (0, p)
    bar = tqdm(range(lo, hi, block), desc=f"item kNN graph (k={k})", unit="block", leave=False,
               disable=hi - lo < 50_000)
    for start in bar:  # row blocks, not nodes: O(P / block) iterations
        end = min(start + block, hi)
        q = x[start:end] * inv[start:end, None]  # (b, d)
        sim = q @ x.T  # (b, P)
        sim *= inv  # column norms
        if not include_self:
            diag = torch.arange(sim.shape[0])
            sim[diag, diag + start] = -float("inf")
        cols.append(sim.topk(k, dim=1).indices)
        del sim
    if not cols:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    col = torch.cat(cols).reshape(-1)  # (P*k,) positions among present items
    row = torch.arange(lo, lo + col.numel() // k).repeat_interleave(k)
    return idx[row], idx[col]


def search_edges(features: Tensor, k: int, present: Tensor | None = None, include_self: bool = True,
                 max_bytes: int = KNN_MEMORY, search: KnnSearch | None = None) -> tuple[Tensor, Tensor]:
    """:func:`knn_edges` (exact) or :func:`mrs.knn.ivf_knn_edges` (approximate), as ``search``
    resolves for the number of present items (``None``: exact)."""
    n_present = features.shape[0] if present is None else int(present.sum())
    if search is None or search.resolve(n_present) == "exact":
        return knn_edges(features, k, present, include_self, max_bytes)
    return ivf_knn_edges(features, k, present, include_self, search)


def sym_norm_values(row: Tensor, col: Tensor, n: int) -> Tensor:
    """FREEDOM's ``compute_normalized_laplacian``: ``1/sqrt(r_i · r_j)`` with ``r`` the row sums of
    the binary (asymmetric) kNN matrix (= k for every present item)."""
    deg = torch.bincount(row, minlength=n).float().clamp(min=1)
    return deg[row].rsqrt() * deg[col].rsqrt()


def knn_adj(features: Tensor, k: int, present: Tensor | None = None, include_self: bool = False,
            max_bytes: int = KNN_MEMORY, search: KnnSearch | None = None) -> Tensor:
    """One kNN graph ``D^-1/2 S D^-1/2`` (``(I, I)`` CSR) from ``features``; items that are not
    ``present`` (default: all-zero rows) get no edges. Self excluded by default (the earlier
    ``knn_graph=concat`` variant); FREEDOM's per-modality graphs include it. ``search``: exact
    (``None``) or approximate (:class:`mrs.knn.KnnSearch`)."""
    if present is None:
        present = features.abs().sum(1) > 0
    n = features.shape[0]
    if int(present.sum()) < (1 if include_self else 2) or k < 1:
        raise MrsError(f"knn graph: need at least 2 items with content and k >= 1 "
                       f"(got {int(present.sum())} items, k={k})")
    row, col = search_edges(features, k, present, include_self, max_bytes, search)
    return to_csr(row, col, sym_norm_values(row, col, n), (n, n))


def freedom_knn_adj(features: dict[str, Tensor], present: dict[str, Tensor], k: int,
                    weights: dict[str, float], max_bytes: int = KNN_MEMORY,
                    search: KnnSearch | None = None) -> Tensor:
    r"""FREEDOM's frozen item-item graph (enoche/FREEDOM ``src/models/freedom.py``): one kNN graph
    per modality (cosine, ``topk`` with self included, binary, ``D^-1/2 S_m D^-1/2``), mixed

    .. math::
        S = \sum_m w_m S_m \qquad (\text{published: } 0.1\, S_{image} + 0.9\, S_{text})

    Missing content (not in the original, whose datasets have every feature): an item without
    modality ``m`` has no edges in ``S_m`` (a filled-in mean vector would make every such item
    the neighbour of the same few items: hubs); its row mixes the modalities it has with weights
    renormalised to sum to one, and an item with no content at all keeps only a self-loop (1),
    so ``S`` is then the identity on it. ``(I, I)`` CSR. ``search``: each modality's search, exact
    (``None``) or as :class:`mrs.knn.KnnSearch` resolves for its number of present items.
    """
    names = list(features)
    n = features[names[0]].shape[0]
    have = torch.stack([present[m].bool() for m in names])  # (M, I)
    w = torch.tensor([float(weights[m]) for m in names])  # (M,)
    total = (w[:, None] * have).sum(0)  # (I,) weight of the modalities each item has
    rows, cols, vals = [], [], []
    for j, m in enumerate(names):
        row, col = search_edges(features[m], k, have[j], True, max_bytes, search)
        rows.append(row)
        cols.append(col)
        vals.append(sym_norm_values(row, col, n) * (w[j] / total[row]))
    bare = (~have.any(0)).nonzero().squeeze(1)  # items with no content: self-loop only
    rows.append(bare)
    cols.append(bare)
    vals.append(torch.ones(bare.numel()))
    return to_csr(torch.cat(rows), torch.cat(cols), torch.cat(vals), (n, n))


# ------------------------------------------------ LATTICE's graphs (weighted kNN, row-normalised)

def rw_self_loop_blocks(users: Tensor, items: Tensor, n_users: int, n_items: int
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""LATTICE's user-item graph :math:`D^{-1}(A + I)` (MMRec ``LATTICE.get_adj_mat``: self-loops,
    row-normalised, not symmetric), by blocks: ``P_ui = D_u^{-1} R (U, I)`` and
    ``P_iu = D_i^{-1} R^T (I, U)`` as CSR, and the self-loop weights ``1 / (d + 1)`` of users
    ``(U,)`` and items ``(I,)`` (degrees count the self-loop). One layer is then
    ``u' = s_u u + P_ui i``, ``i' = s_i i + P_iu u``."""
    users, items = users.long(), items.long()
    inv_u = 1.0 / (torch.bincount(users, minlength=n_users).float() + 1.0)
    inv_i = 1.0 / (torch.bincount(items, minlength=n_items).float() + 1.0)
    return (to_csr(users, items, inv_u[users], (n_users, n_items)),
            to_csr(items, users, inv_i[items], (n_items, n_users)), inv_u, inv_i)


def cosine_edge_values(x: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """``cos(x_row, x_col)`` per edge (E,), differentiable in ``x``: the entries of a dense
    cosine matrix at the kNN edges only (``O(E·d)``, never ``I x I``)."""
    z = torch.nn.functional.normalize(x, dim=1)
    return (z[row] * z[col]).sum(1)


def laplacian_edge_values(row: Tensor, col: Tensor, val: Tensor, n: int) -> Tensor:
    r"""MMRec's ``compute_normalized_laplacian`` on an edge list: :math:`D^{-1/2} A D^{-1/2}` with
    :math:`D` the row sums of the (asymmetric, weighted) :math:`A`, ``0`` where a row sum is 0
    (MMRec's ``isinf -> 0``); duplicate edges count in the sums as they would summed.
    Differentiable in ``val``."""
    inv = val.new_zeros(n).index_add(0, row, val).pow(-0.5)
    inv = inv.masked_fill(torch.isinf(inv), 0.0)
    return inv[row] * val * inv[col]


def edge_propagate(row: Tensor, col: Tensor, val: Tensor, x: Tensor, n: int) -> Tensor:
    """``A x`` for the edge list ``A`` (duplicates summed), differentiable in ``val`` and ``x``:
    for a graph whose weights take gradients (LATTICE's learned graph). Memory ``O(E·r)``;
    a fixed graph uses :func:`spmm`."""
    return x.new_zeros(n, x.shape[1]).index_add(0, row, val[:, None] * x[col])


def weighted_knn_adj(features: Tensor, k: int, present: Tensor | None = None,
                     max_bytes: int = KNN_MEMORY, search: KnnSearch | None = None) -> Tensor:
    r"""LATTICE's item graph of one modality (MMRec ``compute_normalized_laplacian(
    build_knn_neighbourhood(build_sim(x), k))``): each present item's ``k`` most cosine-similar
    present items, self included (MMRec's ``topk`` over the full row), weighted by the cosine
    (not binary, unlike FREEDOM's), normalised by :func:`laplacian_edge_values`. ``(I, I)`` CSR;
    the search is :func:`search_edges` (bounded memory), never the dense ``I x I`` similarity
    MMRec builds (its issue #22)."""
    n = features.shape[0]
    row, col = search_edges(features, k, present, True, max_bytes, search)
    val = laplacian_edge_values(row, col, cosine_edge_values(features.float(), row, col), n)
    return to_csr(row, col, val, (n, n))


def load_or_build_weighted_knn(features: Tensor, present: Tensor, k: int, cache_dir: Path | None,
                               search: KnnSearch | None = None) -> Tensor:
    """:func:`weighted_knn_adj`, cached by the features, mask, k and the search."""
    tag = _search_tag(search, [int(present.sum())])
    key = f"{tensors_checksum(features, present, extra='weighted;' + tag)[:24]}-k{k}" + ("-ivf" if tag else "")
    return load_or_build_graph(key, features.shape[0],
                               lambda: weighted_knn_adj(features, k, present, search=search), cache_dir)


def modality_knn_graphs(features: dict[str, Tensor], present_of, k: int, cache_dir: Path | None,
                        search: KnnSearch | None = None) -> dict[str, Tensor]:
    """One cached :func:`weighted_knn_adj` per modality (LATTICE's and MGCN's frozen :math:`S_m`);
    ``present_of(m)`` is modality ``m``'s row mask."""
    return {m: load_or_build_weighted_knn(x, present_of(m), k, cache_dir, search) for m, x in features.items()}


def tensors_checksum(*tensors: Tensor, extra: str = "") -> str:
    """sha256 over the tensors' float32 bytes and shapes, plus ``extra`` (a cache key)."""
    h = hashlib.sha256(extra.encode())
    for t in tensors:
        arr = np.ascontiguousarray(t.detach().cpu().float().numpy())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def features_checksum(features: Tensor) -> str:
    """sha256 of the feature matrix's float32 bytes and shape (the kNN cache key)."""
    return tensors_checksum(features)


def load_or_build_graph(key: str, n: int, build, cache_dir: Path | None) -> Tensor:
    """An ``(n, n)`` graph read from ``cache_dir/knn-<key>.npz`` when present, otherwise
    ``build()`` and written there atomically. ``cache_dir=None`` builds without caching."""
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / f"knn-{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                row, col, w = (torch.from_numpy(z[a]) for a in ("row", "col", "w"))
            log.info("item kNN graph read from cache %s", path)
            return to_csr(row.long(), col.long(), w.float(), (n, n))
        except (OSError, KeyError, ValueError) as e:
            log.warning("ignoring unreadable kNN cache %s (%s); rebuilding", path, e)
    adj = build()
    coo = adj.to_sparse_coo().coalesce()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # np.savez appends ".npz" to bare paths; a file object does not
            np.savez(f, row=coo.indices()[0].numpy().astype(np.int32),
                     col=coo.indices()[1].numpy().astype(np.int32), w=coo.values().numpy())
    log.info("item kNN graph written to %s", path)
    return adj


def _search_tag(search: KnnSearch | None, n_present: list[int]) -> str:
    """The search's part of a cache key: empty when every graph is exact, so an exact and an
    approximate graph never share a file (and exact keys are those from before IVF)."""
    tags = [search.tag(p) for p in n_present] if search is not None else []
    return "" if not any(tags) else "search=" + ",".join(t or "exact" for t in tags)


def load_or_build_knn(features: Tensor, k: int, cache_dir: Path | None,
                      present: Tensor | None = None, search: KnnSearch | None = None) -> Tensor:
    """:func:`knn_adj` (self excluded), cached by the features' (and mask's) checksum, k and
    the search kind and parameters."""
    parts = (features,) if present is None else (features, present)
    n_present = int((features.abs().sum(1) > 0).sum() if present is None else present.sum())  # as knn_adj
    tag = _search_tag(search, [n_present])
    key = f"{tensors_checksum(*parts, extra=tag)[:24]}-k{k}" + ("-ivf" if tag else "")
    kw = {k_: v for k_, v in (("present", present), ("search", search)) if v is not None}
    build = lambda: knn_adj(features, k, **kw)  # noqa: E731
    return load_or_build_graph(key, features.shape[0], build, cache_dir)


def load_or_build_freedom_knn(features: dict[str, Tensor], present: dict[str, Tensor], k: int,
                              weights: dict[str, float], cache_dir: Path | None,
                              search: KnnSearch | None = None) -> Tensor:
    """:func:`freedom_knn_adj`, cached by the features, masks, mixing weights, k and the search
    kind and parameters of every modality."""
    names = sorted(features)
    stag = _search_tag(search, [int(present[m].sum()) for m in names])
    tag = "freedom;" + ";".join(f"{m}={weights[m]!r}" for m in names) + (f";{stag}" if stag else "")
    key = f"{tensors_checksum(*(features[m] for m in names), *(present[m] for m in names), extra=tag)[:24]}-k{k}"
    key += "-ivf" if stag else ""
    n = next(iter(features.values())).shape[0]
    return load_or_build_graph(key, n, lambda: freedom_knn_adj(features, present, k, weights, search=search),
                               cache_dir)


# ------------------------------------ MMGCN's and GRCN's message passing on the (U+I)-node graph

def bipartite_edges(users: Tensor, items: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
    """``(source, target)`` (2E,) of the user-item graph over ``U + I`` nodes (items offset by
    ``U``), both directions: the ``E`` user→item edges first, then the ``E`` item→user ones (the
    order of PyG's ``cat((edge_index, edge_index[[1, 0]]), 1)`` in MMRec's MMGCN and GRCN)."""
    u, i = users.long(), items.long() + n_users
    return torch.cat([u, i]), torch.cat([i, u])


def mean_adj(users: Tensor, items: Tensor, n_users: int, n_items: int) -> Tensor:
    r"""``D^{-1} A`` over the ``U + I`` nodes (no self-loops) as CSR: ``(D^{-1} A x)_t`` is the mean
    of ``x`` over the neighbours of ``t`` (PyG ``MessagePassing(aggr='mean')`` with message
    ``x_j``, MMGCN's ``BaseModel``); an isolated node (cold item) gets an empty row, so zeros."""
    src, dst = bipartite_edges(users, items, n_users)
    n = n_users + n_items
    deg = torch.bincount(dst, minlength=n).float().clamp(min=1)
    return to_csr(dst, src, deg[dst].reciprocal(), (n, n))


def segment_softmax(scores: Tensor, index: Tensor, n: int) -> Tensor:
    r"""Softmax of ``scores`` (E,) within the groups of edges sharing ``index`` (their target):
    :math:`\exp(s_e - m_g) / (\sum_{e' \in g} \exp(s_{e'} - m_g) + 10^{-16})`, ``m_g`` the group's
    maximum (PyG ``utils.softmax``, GRCN's attention). Differentiable in ``scores``."""
    top = scores.new_full((n,), float("-inf")).scatter_reduce(0, index, scores.detach(), "amax")
    e = (scores - top[index]).exp()
    return e / (e.new_zeros(n).index_add(0, index, e)[index] + 1e-16)


# ------------------------------------------------------------- LGMRec's raw interaction matrix

def interaction_matrix(users: Tensor, items: Tensor, n_users: int, n_items: int) -> tuple[Tensor, Tensor]:
    """The binary train interactions ``R (U, I)`` as CSR (deduplicated edges, not normalised) and
    each user's ``1 / (d_u + 1e-7)`` ``(U, 1)`` (MMRec LGMRec's ``adj`` and ``num_inters``):
    ``R x`` sums a user's items' rows, ``(R x) / d_u`` averages them."""
    users, items = users.long(), items.long()
    inv_deg = 1.0 / (torch.bincount(users, minlength=n_users).float() + 1e-7)
    return to_csr(users, items, torch.ones(users.numel()), (n_users, n_items)), inv_deg[:, None]
