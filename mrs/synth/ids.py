"""Raw ids in each source's spelling, drawn deterministically and returned sorted and unique."""
from __future__ import annotations

import numpy as np

_ALNUM = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype="S1")


def hm_article_ids(n: int, seed: int) -> np.ndarray:
    """``n`` H&M article ids as 10-character zero-padded strings (product code * 1000 + variant)."""
    rng = np.random.default_rng([seed, 10])
    n_codes, n_var = 959461 - 108775 + 1, 40  # H&M's product-code range; up to 40 colour variants
    v = np.sort(rng.choice(n_codes * n_var, n, replace=False))
    ids = (108775 + v // n_var) * 1000 + 1 + v % n_var
    return np.char.zfill(ids.astype("U10"), 10)


def hm_customer_ids(n: int, seed: int) -> np.ndarray:
    """``n`` H&M customer ids: 64 lowercase hex characters (sha256-like), sorted."""
    rng = np.random.default_rng([seed, 11])
    raw = rng.bytes(32 * n)
    ids = np.frombuffer(raw.hex().encode(), dtype="S64").astype("U64")
    return _unique_sorted(ids, n, lambda k: hm_customer_ids(k, seed + 1))


def amazon_user_ids(n: int, seed: int) -> np.ndarray:
    """``n`` Amazon 2023 user ids: ``A`` + 27 upper-case letters/digits (as in the real files)."""
    rng = np.random.default_rng([seed, 12])
    body = _ALNUM[rng.integers(0, len(_ALNUM), (n, 27))].view("S27").ravel()
    return _unique_sorted(np.char.add("A", body.astype("U27")), n, lambda k: amazon_user_ids(k, seed + 1))


def amazon_asins(n: int, seed: int) -> np.ndarray:
    """``n`` ASINs: ``B0`` + 8 upper-case letters/digits."""
    rng = np.random.default_rng([seed, 13])
    body = _ALNUM[rng.integers(0, len(_ALNUM), (n, 8))].view("S8").ravel()
    return _unique_sorted(np.char.add("B0", body.astype("U8")), n, lambda k: amazon_asins(k, seed + 1))


def _unique_sorted(ids: np.ndarray, n: int, more) -> np.ndarray:
    u = np.unique(ids)
    if len(u) < n:  # a collision (vanishingly rare): top up from another stream
        u = np.unique(np.concatenate([u, more(n - len(u) + 8)]))
    return u[:n]
