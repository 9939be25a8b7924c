"""Raw Amazon Reviews 2023 files from the planted model, in the McAuley lab's jsonl formats.

- ``<Category>.jsonl``: one review per line with ``rating, title, text, images, asin,
  parent_asin, user_id, timestamp`` (unix **milliseconds**, UTC), ``helpful_vote,
  verified_purchase``, in day order. The context mode is weekday/weekend of the UTC timestamp.
- ``meta_<Category>.jsonl``: ``main_category, title, average_rating, rating_number, features,
  description, price, images [{thumb, large, variant, hi_res}], videos, store, categories,
  details, parent_asin, bought_together``. Image URLs are ``<image_base_url>/<parent_asin>.jpg``;
  the pictures themselves are written to ``images/<parent_asin>.jpg``, so serving that folder at
  the base URL exercises ``mrs download-images`` end to end. The default base URL is under the
  reserved ``.invalid`` domain: it never resolves by accident.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mrs.synth import content as C
from mrs.synth.ids import amazon_asins, amazon_user_ids
from mrs.synth.planted import Planted, SynthConfig, block_rngs, sample

REVIEW_FIELDS = ["rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp",
                 "helpful_vote", "verified_purchase"]
DEFAULT_IMAGE_BASE_URL = "https://images.synth.invalid/I"
_OPINIONS = [("Disappointed", "Not what I expected, the {w} feels cheap."),
             ("It's okay", "Fine for the price, the {w} is average."),
             ("Nice", "Nice {w}, fits as described."),
             ("Love it", "Love this {w}! Great quality and colour."),
             ("Perfect", "Exactly what I wanted, the {w} is perfect.")]


def write_amazon2023(tmp: Path, p: Planted, cfg: SynthConfig, content: C.ItemContent, *,
                     category: str = "Synth_Fashion", images: bool = True, image_size: int = 64,
                     image_base_url: str = DEFAULT_IMAGE_BASE_URL, chunk_size: int = 1 << 18,
                     variant_asins: float = 0.0) -> dict:
    """Write reviews and meta jsonl (and images) into ``tmp``. Returns counts and raw ids.

    ``variant_asins``: that share of reviews name a variant ``asin`` (one per item) while
    ``parent_asin`` stays the item, as in the real files.
    """
    asins = amazon_asins(cfg.n_items, cfg.seed)
    variants = amazon_asins(cfg.n_items, cfg.seed + 7919)
    user_ids = amazon_user_ids(cfg.n_users, cfg.seed)
    base = image_base_url.rstrip("/")
    _meta(tmp / f"meta_{category}.jsonl", p, cfg, content, asins, base)
    n = _reviews(tmp / f"{category}.jsonl", p, cfg, content, asins, variants, variant_asins,
                 user_ids, chunk_size)
    n_img = 0
    if images:
        (tmp / "images").mkdir(exist_ok=True)
        for i in tqdm(range(cfg.n_items), desc="synth images", unit="img", mininterval=1.0):
            (tmp / "images" / f"{asins[i]}.jpg").write_bytes(C.render_image(content, i, cfg.seed, image_size))
            n_img += 1
    return {"item_ids": asins, "user_ids": user_ids, "n_reviews": n, "n_images": n_img,
            "reviews_file": f"{category}.jsonl", "meta_file": f"meta_{category}.jsonl"}


def _reviews(path: Path, p: Planted, cfg: SynthConfig, content: C.ItemContent,
             asins: np.ndarray, variants: np.ndarray, variant_share: float,
             user_ids: np.ndarray, chunk_size: int) -> int:
    words = np.array([C.PRODUCT_TYPES[j][1].lower() for j in content.ptype], dtype=object)
    n = 0
    with open(path, "w", encoding="utf-8") as f, tqdm(total=cfg.n_interactions, desc="synth reviews",
                                                      unit="row", unit_scale=True, mininterval=1.0) as bar:
        for ch in sample(p, cfg, "weekend", chunk_size):
            B = len(ch.user)
            rating, ms_in_day = np.empty(B, np.int64), np.empty(B, np.int64)
            variant, helpful, verified = np.empty(B, bool), np.empty(B, np.int64), np.empty(B, bool)
            for sl, rng in block_rngs(cfg.seed, 40, n, n + B):
                b = sl.stop - sl.start
                # Users rate items they pick well: ratings skew high, as on Amazon.
                rating[sl] = rng.choice(5, b, p=[0.06, 0.06, 0.12, 0.22, 0.54])
                ms_in_day[sl] = rng.integers(0, 86_400_000, b)
                variant[sl] = rng.random(b) < variant_share
                helpful[sl] = rng.geometric(0.6, b) - 1
                verified[sl] = rng.random(b) < 0.9
            df = pd.DataFrame({
                "rating": (rating + 1).astype(float),
                "title": [_OPINIONS[r][0] for r in rating],
                "text": [_OPINIONS[r][1].format(w=w) for r, w in zip(rating, words[ch.item])],
                "images": [[] for _ in range(B)],
                "asin": np.where(variant, variants[ch.item], asins[ch.item]),
                "parent_asin": asins[ch.item],
                "user_id": user_ids[ch.user],
                "timestamp": ch.day.astype(np.int64) * 86_400_000 + ms_in_day,
                "helpful_vote": helpful,
                "verified_purchase": verified,
            })[REVIEW_FIELDS]
            f.write(df.to_json(orient="records", lines=True, force_ascii=False))
            n += B
            bar.update(B)
    return n


def _meta(path: Path, p: Planted, cfg: SynthConfig, content: C.ItemContent,
          asins: np.ndarray, base_url: str) -> None:
    rng = np.random.default_rng([cfg.seed, 41])
    level = rng.lognormal(np.log(25.0), 0.5, len(p.cluster_factors))
    price = np.round(level[p.item_cluster] * rng.lognormal(0, 0.3, cfg.n_items), 2)
    no_price = rng.random(cfg.n_items) < 0.3  # many real items have no price
    stores = [f"{C.ADJECTIVES[a].capitalize()}Wear" for a in range(len(C.ADJECTIVES))]
    with open(path, "w", encoding="utf-8") as f:
        for i, a in enumerate(asins):
            pt, col = C.PRODUCT_TYPES[content.ptype[i]], C.COLOURS[content.colour[i]]
            app, idx = C.APPEARANCES[content.appearance[i]], C.INDEXES[content.index[i]]
            url = f"{base_url}/{a}.jpg"
            rec = {
                "main_category": "AMAZON FASHION",
                "title": f"{C.item_title(content, i)}, {col[1]}",
                "average_rating": round(float(rng.uniform(3.0, 5.0)), 1),
                "rating_number": int(rng.geometric(0.05)),
                "features": [C.MATERIALS[content.material[i]].capitalize(), app[1], "Imported"],
                "description": [C.item_description(content, i)],
                "price": None if no_price[i] else float(price[i]),
                "images": [{"thumb": url, "large": url, "variant": "MAIN", "hi_res": url}],
                "videos": [],
                "store": stores[content.adjective[i]],
                "categories": ["Clothing, Shoes & Jewelry", idx[3], pt[2]],
                "details": {"Department": idx[1], "Material": C.MATERIALS[content.material[i]],
                            "Color": col[1]},
                "parent_asin": str(a),
                "bought_together": None,
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
