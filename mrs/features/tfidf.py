r"""TF-IDF text features (the lowest rung of the seed paper's content ladder): scikit-learn's
``TfidfVectorizer`` over every item's text, reduced with ``TruncatedSVD`` (LSA) to ``dim``
dimensions and L2-normalised, written to the same HDF5 / LMDB stores as the neural encoders
(``features/text-tfidf.h5``), so training reads it like any other store.

.. math::
    x_i = \frac{V_k^\top\, \mathrm{tfidf}(t_i)}{\lVert V_k^\top\, \mathrm{tfidf}(t_i) \rVert_2}

where :math:`V_k` holds the top ``k`` right singular vectors of the item × term TF-IDF matrix
(sublinear tf, unigrams and bigrams, terms in at least 2 items). The fit is over the whole
catalogue at once (TF-IDF is a corpus statistic), so there are no resumable chunks or shards:
it takes seconds. Items with empty text, or with no term that survives ``min_df``, are stored as
absent (the reader fills them); with fewer texts or terms than ``dim`` the store has the matrix's
rank as its dimension (warned).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from mrs.errors import MrsError

log = logging.getLogger(__name__)


def tfidf_features(texts: list[str], dim: int, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, str, dict[str, np.ndarray]]:
    """``(features (n, k) float32, present (n,) bool, version, {problem: item positions})``.

    Every present row is unit-norm. ``k = dim`` unless the TF-IDF matrix has a smaller rank (few
    texts or terms): then ``k`` is that rank (an exact SVD, so no text is projected to zero) and
    a warning says why. A text none of whose terms survives (``min_df=2``: words no other item
    has) has no vector: it is absent (``no_usable_terms``), never a zero row marked present, which
    the reader would refuse as damaged.
    """
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer

    has_text = np.array([bool(t and t.strip()) for t in texts], dtype=bool)
    docs = [t for t, p in zip(texts, has_text) if p]
    if len(docs) < 2:
        raise MrsError(f"tfidf: {len(docs)} items with text; need at least 2")
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2 if len(docs) > 20 else 1)
    try:
        x = vec.fit_transform(docs)                                            # (n_present, terms) sparse
    except ValueError as e:  # e.g. only stop words
        raise MrsError(f"tfidf: {e}") from None
    z, keep, problems, how = svd_unit_rows(x, dim, seed, ("tfidf", "TF-IDF", "texts", "terms"))
    idx = np.flatnonzero(has_text)                                             # item position of each doc
    out = np.zeros((len(texts), z.shape[1]), dtype=np.float32)
    out[idx] = z
    present = np.zeros(len(texts), dtype=bool)
    present[idx[keep]] = True
    version = f"scikit-learn {sklearn.__version__}; tfidf(sublinear, 1-2 grams) + {how}"
    return out, present, version, {name: idx[rows] for name, rows in problems.items()}


def svd_unit_rows(x, dim: int, seed: int, names: tuple[str, str, str, str], algorithm: str = "randomized"
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], str]:
    """The rows of the sparse ``x`` (n, m) reduced to ``k <= dim`` SVD dimensions and L2-normalised.

    Returns ``(z (n, k) float32, kept (n,) bool, {problem: row positions}, "method(k)")``; rows not
    kept are zero. ``k = dim`` unless ``x`` has a smaller rank: then the exact SVD of that rank (no
    row is projected to zero) and a warning built from ``names`` = (encoder, matrix, rows, columns).
    A row without any nonzero (``no_usable_terms``) or with (almost) no weight in the top-``k``
    directions (``outside_svd_components``) has no direction to normalise: it is not kept.
    ``algorithm``: TruncatedSVD's, ``randomized`` (approximate, fast) or ``arpack`` (the exact top ``k``).
    """
    from sklearn.decomposition import TruncatedSVD

    if min(x.shape) <= dim:   # rank <= dim: the exact SVD keeps every direction a row can have
        z, how = _exact_svd(x), "exact SVD"
    else:
        svd = TruncatedSVD(n_components=dim, algorithm=algorithm, random_state=seed)
        z, how = svd.fit_transform(x), "TruncatedSVD" if algorithm == "randomized" else f"TruncatedSVD-{algorithm}"
    k = z.shape[1]
    if k < dim:
        enc, matrix, rows, cols = names
        log.warning("%s: dim %d < the requested %d: the %s matrix of %d %s x %d %s has rank %d",
                    enc, k, dim, matrix, x.shape[0], rows, x.shape[1], cols, k)
    norms = np.linalg.norm(z, axis=1)                                          # (n,)
    usable = np.asarray(x.getnnz(axis=1) > 0)
    projected = norms > 1e-6 * np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    keep = usable & projected
    out = np.zeros((x.shape[0], k), dtype=np.float32)
    out[keep] = z[keep] / norms[keep, None]
    problems = {"no_usable_terms": np.flatnonzero(~usable), "outside_svd_components": np.flatnonzero(usable & ~projected)}
    return out, keep, {name: v for name, v in problems.items() if len(v)}, f"{how}({k})"


def _exact_svd(x) -> np.ndarray:
    """``U S`` (= ``X V``) of the sparse ``x`` over its nonzero singular values, from the Gram
    matrix of its smaller side (at most ``dim`` x ``dim``); columns by decreasing singular value."""
    small_rows = x.shape[0] <= x.shape[1]
    g = (x @ x.T if small_rows else x.T @ x).toarray().astype(np.float64)     # (m, m)
    w, v = np.linalg.eigh(g)                                                   # ascending
    w, v = w[::-1], v[:, ::-1]
    keep = w > max(w[0], 0.0) * 1e-10                                          # rank; s**2 > (1e-5 s_max)**2
    w, v = w[keep], v[:, keep]
    z = v * np.sqrt(w) if small_rows else np.asarray(x @ v)                    # (n, rank)
    return np.ascontiguousarray(z)


def extract_tfidf(root: Path, cfg, items: pd.DataFrame, items_ck: str, out: Path) -> dict:
    """Fit TF-IDF + SVD on ``items.text`` and write the store ``out`` (written whole, atomically)."""
    from mrs.features.extract import _texts_ok

    if cfg.shard not in (None, "", "0/1"):
        raise MrsError("--shard: the tfidf encoder fits the whole catalogue at once; drop --shard")
    texts, ok = _texts_ok(items["text"].tolist())
    feats, present, version, problems = tfidf_features(texts, cfg.dim, seed=0)
    digest = hashlib.sha256("\x00".join(t if o else "" for t, o in zip(texts, ok)).encode()).hexdigest()
    return write_fitted_store(out, cfg, items, items_ck, feats, present, version, digest,
                              {"empty_text": np.flatnonzero(~ok), **problems})


def write_fitted_store(out: Path, cfg, items: pd.DataFrame, items_ck: str, feats: np.ndarray,
                       present: np.ndarray, version: str, digest: str, problems: dict[str, np.ndarray]) -> dict:
    """Write a store fitted on the whole catalogue (TF-IDF, attributes) whole, atomically, with
    the usual meta and ``<store>.report.json``; ``problems`` are item positions by reason."""
    from mrs.features.extract import print_report, report_path
    from mrs.features.store import write_store
    from mrs.io import write_json_atomic

    ids = items["item_id"].astype(str).tolist()
    encoder = cfg.encoder_name()
    meta = {"modality": cfg.modality, "encoder": encoder, "encoder_version": version, "normalisation": "l2",
            "items_checksum": items_ck, "input_checksum": digest, "shard": "",
            "config": json.dumps({k: v for k, v in asdict(cfg).items() if k not in ("out", "workers", "device", "shard")}),
            "item_range": json.dumps([0, len(ids)]), "n_items_total": len(ids)}
    write_store(out, ids, feats, present, meta, dtype=cfg.dtype)
    report = {"store": str(out), "modality": cfg.modality, "encoder": encoder, "items": len(ids),
              "present": int(present.sum()), "missing": int((~present).sum()),
              "problems": {kind: {"count": len(rows), "first_ids": [ids[j] for j in rows[:10]]}
                           for kind, rows in problems.items() if len(rows)},
              "dim": int(feats.shape[1])}
    write_json_atomic(report_path(out), report)
    print_report(report)
    return report
