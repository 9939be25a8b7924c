r"""TF-IDF text features (the lowest rung of the seed paper's content ladder): scikit-learn's
``TfidfVectorizer`` over every item's text, reduced with ``TruncatedSVD`` (LSA) to ``dim``
dimensions and L2-normalised, written to the same HDF5 / LMDB stores as the neural encoders
(``features/text-tfidf.h5``), so training reads it like any other store.

.. math::
    x_i = \frac{V_k^\top\, \mathrm{tfidf}(t_i)}{\lVert V_k^\top\, \mathrm{tfidf}(t_i) \rVert_2}

where :math:`V_k` holds the top ``k`` right singular vectors of the item × term TF-IDF matrix
(sublinear tf, unigrams and bigrams, terms in at least 2 items). The fit is over the whole
catalogue at once (TF-IDF is a corpus statistic), so there are no resumable chunks or shards:
it takes seconds. Items with empty text are stored as absent (the reader fills them).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from mrs.errors import MrsError


def tfidf_features(texts: list[str], dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(features (n, k) float32 unit rows, present (n,) bool, version)``; ``k = min(dim, terms - 1)``."""
    import sklearn
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    present = np.array([bool(t and t.strip()) for t in texts])
    out = np.zeros((len(texts), dim), dtype=np.float32)
    docs = [t for t, p in zip(texts, present) if p]
    if len(docs) < 2:
        raise MrsError(f"tfidf: {len(docs)} items with text; need at least 2")
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2 if len(docs) > 20 else 1)
    try:
        x = vec.fit_transform(docs)                                            # (n_present, terms) sparse
    except ValueError as e:  # e.g. only stop words
        raise MrsError(f"tfidf: {e}") from None
    k = max(1, min(dim, x.shape[1] - 1, x.shape[0] - 1))
    z = TruncatedSVD(n_components=k, random_state=seed).fit_transform(x)       # (n_present, k)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    out[present, :k] = z
    version = f"scikit-learn {sklearn.__version__}; tfidf(sublinear, 1-2 grams) + TruncatedSVD({k})"
    return out[:, :k], present, version


def extract_tfidf(root: Path, cfg, items: pd.DataFrame, items_ck: str, out: Path) -> dict:
    """Fit TF-IDF + SVD on ``items.text`` and write the store ``out`` (written whole, atomically)."""
    from mrs.features.extract import _texts_ok, print_report, report_path
    from mrs.features.store import write_store
    from mrs.io import write_json_atomic

    if cfg.shard not in (None, "", "0/1"):
        raise MrsError("--shard: the tfidf encoder fits the whole catalogue at once; drop --shard")
    texts, ok = _texts_ok(items["text"].tolist())
    feats, present, version = tfidf_features(texts, cfg.dim, seed=0)
    ids = items["item_id"].astype(str).tolist()
    digest = hashlib.sha256("\x00".join(t if o else "" for t, o in zip(texts, ok)).encode()).hexdigest()
    meta = {"modality": "text", "encoder": "tfidf", "encoder_version": version, "normalisation": "l2",
            "items_checksum": items_ck, "input_checksum": digest, "shard": "",
            "config": json.dumps({k: v for k, v in asdict(cfg).items() if k not in ("out", "workers", "device", "shard")}),
            "item_range": json.dumps([0, len(ids)]), "n_items_total": len(ids)}
    write_store(out, ids, feats, present, meta, dtype=cfg.dtype)
    report = {"store": str(out), "modality": "text", "encoder": "tfidf", "items": len(ids),
              "present": int(present.sum()), "missing": int((~present).sum()),
              "problems": ({"empty_text": {"count": int((~present).sum()),
                                           "first_ids": [ids[j] for j in np.flatnonzero(~present)[:10]]}}
                           if (~present).any() else {}),
              "dim": int(feats.shape[1])}
    write_json_atomic(report_path(out), report)
    print_report(report)
    return report
