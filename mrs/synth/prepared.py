"""``make_prepared``: a small planted dataset written straight in the prepared contract, for tests.

It skips the raw files and ``mrs prepare`` (the demo and the planted-structure experiment take
the real path: ``mrs synth`` -> ``mrs prepare``); the interactions come from the same planted
generator, with H&M-style modes (context = store/online, time = month) and a temporal split.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mrs.data.prepared import write_prepared
from mrs.errors import MrsError
from mrs.synth.content import CONTEXT_LABELS, MONTH_LABELS, item_content, item_text
from mrs.synth.ids import hm_article_ids, hm_customer_ids
from mrs.synth.planted import SynthConfig, plant, sample_all
from mrs.synth.truth import save_planted


def temporal_split(day: np.ndarray, valid_frac: float = 0.1, test_frac: float = 0.1) -> np.ndarray:
    """int8 split per interaction: the last ``test_frac`` of days' volume test, the ``valid_frac``
    before it valid (whole days, so no day straddles two splits)."""
    q_test = np.quantile(day, 1 - test_frac, method="lower")
    q_valid = np.quantile(day, 1 - test_frac - valid_frac, method="lower")
    split = np.zeros(len(day), np.int8)
    split[day > q_valid] = 1
    split[day > q_test] = 2
    return split


def make_prepared(out_dir: str | Path, *, n_users: int = 200, n_items: int = 300,
                  n_interactions: int = 5000, seed: int = 0, modes: bool = True,
                  features_dim: int = 0, **planted) -> Path:
    """Write a small planted prepared dataset to ``out_dir`` and return the path.

    ``modes=True`` adds ``context`` (2: store/online) and ``time`` (12 months) columns;
    ``False`` writes a plain user-item dataset. ``features_dim > 0`` also writes two feature
    stores, ``features/text-synth.h5`` and ``features/image-synth.h5`` (``d = features_dim``),
    built from each item's planted attribute words and picture cues (image absent for ~10% of
    items), so fusion and cold-item code can be tested without running an encoder.
    ``planted`` overrides other ``SynthConfig`` fields (e.g. ``context_leak=1.0,
    season_strength=0.0`` removes the context and time effects: a control dataset).
    The ground truth is in ``dataset.json["synth"]`` (config) and ``planted.npz``
    (``mrs.synth.load_planted``); items.parquet carries each item's planted ``cluster``.
    """
    out_dir = Path(out_dir)
    try:
        cfg = SynthConfig(n_users=n_users, n_items=n_items, n_interactions=n_interactions, seed=seed, **planted)
    except TypeError as e:
        raise MrsError(f"make_prepared: {e}") from None
    p = plant(cfg)
    ch = sample_all(p, cfg, "channel")
    content = item_content(p, cfg)
    item_ids = hm_article_ids(n_items, seed)
    inter = pd.DataFrame({"user": ch.user, "item": ch.item, "ts": ch.day.astype(np.int64) * 86400})
    if modes:
        inter["context"] = ch.context
        inter["time"] = ch.month
    inter["split"] = temporal_split(ch.day)
    items = pd.DataFrame({"item": np.arange(n_items), "item_id": item_ids,
                          "text": [item_text(content, i) for i in range(n_items)],
                          "image": pd.Series([None] * n_items, dtype=object),
                          "cluster": p.item_cluster})
    users = pd.DataFrame({"user": np.arange(n_users), "user_id": hm_customer_ids(n_users, seed)})
    mode_spec = {"context": {"cardinality": 2, "labels": CONTEXT_LABELS["hm"]},
                 "time": {"cardinality": 12, "labels": MONTH_LABELS}} if modes else {}
    params = {"generator": "mrs.synth.make_prepared", "modes": modes, "features_dim": features_dim,
              "split": "temporal 80/10/10 by day"}
    checksum = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()
    write_prepared(out_dir, inter, items, users, name=f"synth-{seed}", source="synth",
                   modes=mode_spec, params=params, input_checksum=checksum,
                   extra={"synth": cfg.to_dict()})
    save_planted(out_dir / "planted.npz", p, item_ids)
    if features_dim > 0:
        _write_features(out_dir, content, item_ids, features_dim, seed)
    return out_dir


def _write_features(out_dir: Path, content, item_ids: np.ndarray, d: int, seed: int) -> None:
    from mrs.data.prepared import items_checksum
    from mrs.features.store import write_store

    rng = np.random.default_rng([seed, 20])
    n = len(item_ids)

    def words(*vocab_sizes: int) -> list[np.ndarray]:
        return [rng.normal(0, 1, (v, d)) for v in vocab_sizes]

    from mrs.synth import content as C

    E = words(len(C.PRODUCT_TYPES), len(C.COLOURS), len(C.MATERIALS), len(C.APPEARANCES), len(C.INDEXES))
    text = (E[0][content.ptype] + E[1][content.colour] + E[2][content.material]
            + E[3][content.appearance] + E[4][content.index] + rng.normal(0, 0.5, (n, d)))  # (I, d)
    S, Co = words(len(C.SHAPES), len(C.COLOURS))
    image = S[content.shape] + Co[content.colour] + rng.normal(0, 0.8, (n, d))  # (I, d)
    image_present = rng.random(n) >= 0.1
    image[~image_present] = 0.0
    ids = [str(x) for x in item_ids]
    base = {"encoder": "synth", "encoder_version": "1", "normalisation": "none",
            "items_checksum": items_checksum(ids), "input_checksum": f"synth-{seed}"}
    write_store(out_dir / "features" / "text-synth.h5", ids, text.astype(np.float32),
                np.ones(n, bool), {**base, "modality": "text"}, dtype="float32")
    write_store(out_dir / "features" / "image-synth.h5", ids, image.astype(np.float32),
                image_present, {**base, "modality": "image"}, dtype="float32")
