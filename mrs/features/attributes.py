r"""Attribute features: each item's attribute set (``items.parquet`` column ``attributes``, e.g. the
Amazon 2014 categories and brand of ``mrs prepare amazon2014 --attributes``) as a multi-hot
vector, reduced with TruncatedSVD to ``dim`` dimensions and L2-normalised, written to the usual
store ``features/attributes-svd.h5`` so every content-using model reads it like a text or image
store (``data.features=[attributes-svd]``).

.. math::
    x_i = \frac{V_k^\top h_i}{\lVert V_k^\top h_i \rVert_2}, \qquad h_{ia} = [a \in A_i]

where :math:`A_i` is item ``i``'s attribute set and :math:`V_k` the top ``k`` right singular
vectors of the item × attribute multi-hot matrix :math:`H` (columns: the distinct attribute ids
present, so a stray large id costs nothing).

Why a multi-hot and not TF-IDF on the ``"a12 a7"`` tokens: the attributes are a set of
categorical ids with no term frequency, no order and no words to split into n-grams; binary
multi-hot is exactly what is known. IDF would re-weight rare categories by a corpus statistic the
data do not call for, and ``min_df`` would drop an item's only rare attribute. (``mrs features
text --encoder tfidf`` on the token text remains available for comparison.) An attribute that
nearly every item has (Sports' root category) adds the same direction to every row: kept, as it
is what the data say.

The fit is over the whole catalogue (seconds; no chunks or shards). Items without attributes
are absent (``no_attributes``); with fewer items or attributes than ``dim`` the store has the
matrix's rank as its dimension (warned).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from mrs.errors import MrsError
from mrs.features.tfidf import svd_unit_rows, write_fitted_store

ENCODER = "svd"  # the only attribute encoder: multi-hot -> TruncatedSVD


def multihot(attributes: list) -> tuple["scipy.sparse.csr_matrix", np.ndarray]:  # noqa: F821
    """Binary item × attribute CSR matrix (n, m) and the attribute id of each column (sorted)."""
    import scipy.sparse as sp

    lists = [np.unique(np.asarray(a, dtype=np.int64)) if a is not None else np.empty(0, np.int64)
             for a in attributes]
    flat = np.concatenate(lists) if lists else np.empty(0, np.int64)
    cols, codes = np.unique(flat, return_inverse=True)
    indptr = np.concatenate([[0], np.cumsum([len(a) for a in lists])])
    x = sp.csr_matrix((np.ones(len(flat), np.float64), codes.ravel(), indptr), shape=(len(lists), len(cols)))
    return x, cols


def attribute_features(attributes: list, dim: int, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, str, dict[str, np.ndarray]]:
    """``(features (n, k) float32, present (n,) bool, version, {problem: item positions})``: every
    present row unit-norm; items with no attribute are absent (``no_attributes``)."""
    import sklearn

    x, cols = multihot(attributes)
    has = np.asarray(x.getnnz(axis=1) > 0)
    if has.sum() < 2:
        raise MrsError(f"attributes: {int(has.sum())} items with attributes; need at least 2")
    idx = np.flatnonzero(has)
    # arpack: the exact top-k directions (randomized SVD is off by a few 1e-2 on small gaps); a
    # multi-hot of a few thousand attributes takes seconds either way
    z, keep, problems, how = svd_unit_rows(x[idx], dim, seed, ("attributes", "multi-hot", "items", "attributes"),
                                           algorithm="arpack")
    out = np.zeros((x.shape[0], z.shape[1]), dtype=np.float32)
    out[idx] = z
    present = np.zeros(x.shape[0], dtype=bool)
    present[idx[keep]] = True
    version = f"scikit-learn {sklearn.__version__}; multi-hot({len(cols)} attributes) + {how}"
    problems = {"no_attributes": np.flatnonzero(~has), **{k: idx[v] for k, v in problems.items()}}
    return out, present, version, problems


def extract_attributes(root: Path, cfg, items: pd.DataFrame, items_ck: str, out: Path) -> dict:
    """Fit multi-hot + SVD on ``items.attributes`` and write the store ``out`` (whole, atomically)."""
    if cfg.shard not in (None, "", "0/1"):
        raise MrsError("--shard: attribute features fit the whole catalogue at once; drop --shard")
    if cfg.encoder not in ("", ENCODER):
        raise MrsError(f"--encoder {cfg.encoder!r}: attribute features have one encoder, {ENCODER!r}")
    attrs = items["attributes"].tolist()
    for j, a in enumerate(attrs):  # a hand-edited parquet: name the item rather than fail in numpy
        if not _int_list(a):
            raise MrsError(f"{root / 'items.parquet'}: item {items['item_id'].iloc[j]!r}: 'attributes' must "
                           f"be a list of integers, got {str(a)[:40]}")
    feats, present, version, problems = attribute_features(attrs, cfg.dim, seed=0)
    canon = ";".join(",".join(map(str, sorted(set(np.asarray(a, dtype=np.int64).tolist())))) if a is not None else ""
                     for a in attrs)
    digest = hashlib.sha256(canon.encode()).hexdigest()
    return write_fitted_store(out, cfg, items, items_ck, feats, present, version, digest, problems)


def _int_list(a) -> bool:
    """None, or a list / array of integers (an empty one included)."""
    if a is None:
        return True
    if not isinstance(a, (list, np.ndarray)):
        return False
    arr = np.asarray(a)
    return arr.ndim == 1 and (arr.size == 0 or arr.dtype.kind in "iu")
