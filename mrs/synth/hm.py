"""Raw H&M Kaggle files from the planted model: exactly the competition's formats.

- ``transactions_train.csv``: ``t_dat,customer_id,article_id,price,sales_channel_id``; day order,
  customer ids 64 hex characters, article ids zero-padded to 10 characters, channel 1 (store)
  or 2 (online). Streamed chunk by chunk through pyarrow's CSV writer: full size (31.8M rows)
  never holds more than one chunk of strings in memory.
- ``articles.csv``: the 25 real columns in the real order, ending with ``detail_desc``.
- ``customers.csv``: ``customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code``.
- ``images/0XX/0XXXXXXXXX.jpg`` (unless ``images=False``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from mrs.synth import content as C
from mrs.synth.ids import hm_article_ids, hm_customer_ids
from mrs.synth.planted import Planted, SynthConfig, sample

TRANSACTION_COLUMNS = ["t_dat", "customer_id", "article_id", "price", "sales_channel_id"]
ARTICLE_COLUMNS = [
    "article_id", "product_code", "prod_name", "product_type_no", "product_type_name",
    "product_group_name", "graphical_appearance_no", "graphical_appearance_name",
    "colour_group_code", "colour_group_name", "perceived_colour_value_id",
    "perceived_colour_value_name", "perceived_colour_master_id", "perceived_colour_master_name",
    "department_no", "department_name", "index_code", "index_name", "index_group_no",
    "index_group_name", "section_no", "section_name", "garment_group_no", "garment_group_name",
    "detail_desc"]
CUSTOMER_COLUMNS = ["customer_id", "FN", "Active", "club_member_status", "fashion_news_frequency",
                    "age", "postal_code"]


def image_relpath(article_id: str) -> str:
    """H&M's layout: ``images/<first 3 chars>/<article_id>.jpg``."""
    return f"images/{article_id[:3]}/{article_id}.jpg"


def write_hm(tmp: Path, p: Planted, cfg: SynthConfig, content: C.ItemContent, *,
             images: bool = True, image_size: int = 64, chunk_size: int = 1 << 18,
             missing_articles: float = 0.0, int_article_ids: bool = False) -> dict:
    """Write the H&M files into ``tmp`` (the caller renames it into place). Returns counts.

    Real-data quirks on request: ``missing_articles`` drops that share of articles' rows from
    articles.csv and their pictures (the Kaggle sample lacks most); ``int_article_ids`` writes
    ``article_id`` as an integer without the leading zero, as re-saved copies of the data do.
    """
    item_ids = hm_article_ids(cfg.n_items, cfg.seed)
    user_ids = hm_customer_ids(cfg.n_users, cfg.seed)
    rng = np.random.default_rng([cfg.seed, 33])
    listed = rng.random(cfg.n_items) >= missing_articles  # (I,) has an articles.csv row and image
    arts = _articles(content, item_ids)[listed]
    if int_article_ids:
        arts["article_id"] = arts["article_id"].astype(np.int64)
    arts.to_csv(tmp / "articles.csv", index=False)
    _customers(cfg, user_ids).to_csv(tmp / "customers.csv", index=False)
    price = _item_prices(p, cfg)
    written_ids = item_ids.astype(np.int64).astype(str) if int_article_ids else item_ids
    n_tx = _transactions(tmp / "transactions_train.csv", p, cfg, written_ids, user_ids, price, chunk_size)
    n_img = 0
    if images:
        for i in tqdm(np.flatnonzero(listed), desc="synth images", unit="img", mininterval=1.0):
            path = tmp / image_relpath(item_ids[i])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(C.render_image(content, i, cfg.seed, image_size))
            n_img += 1
    return {"item_ids": item_ids, "user_ids": user_ids, "n_transactions": n_tx, "n_images": n_img,
            "n_articles_listed": int(listed.sum())}


def _transactions(path: Path, p: Planted, cfg: SynthConfig, item_ids: np.ndarray,
                  user_ids: np.ndarray, price: np.ndarray, chunk_size: int) -> int:
    days = np.arange(cfg.day0, cfg.day1 + 1).astype("datetime64[D]")
    t_dat = pa.array(np.datetime_as_string(days, unit="D"))
    cust = pa.array(user_ids)
    art = pa.array(item_ids)
    rng = np.random.default_rng([cfg.seed, 30])
    discount = np.where(rng.random(cfg.n_items) < 0.3, 0.7, 1.0)  # some articles on sale
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    n = 0
    with open(path, "wb") as f, tqdm(total=cfg.n_interactions, desc="synth transactions",
                                     unit="row", unit_scale=True, mininterval=1.0) as bar:
        f.write((",".join(TRANSACTION_COLUMNS) + "\n").encode())
        for ch in sample(p, cfg, "channel", chunk_size):
            table = pa.table({
                "t_dat": t_dat.take(pa.array(ch.day - cfg.day0)),
                "customer_id": cust.take(pa.array(ch.user)),
                "article_id": art.take(pa.array(ch.item)),
                # Half the rows in a discount week pay the sale price (H&M prices vary per row).
                "price": price[ch.item] * np.where((ch.day // 7 + ch.item) % 2 == 0, discount[ch.item], 1.0),
                "sales_channel_id": (ch.context + 1).astype(np.int8),
            })
            pacsv.write_csv(table, f, opts)
            n += len(ch.user)
            bar.update(len(ch.user))
    return n


def _item_prices(p: Planted, cfg: SynthConfig) -> np.ndarray:
    """H&M prices are SEK divided by a constant; each cluster has its own price level."""
    rng = np.random.default_rng([cfg.seed, 31])
    level = rng.lognormal(np.log(15.0), 0.5, len(p.cluster_factors))  # (K,)
    sek = np.maximum(1, np.round(level[p.item_cluster] * rng.lognormal(0, 0.3, cfg.n_items), 1))
    return sek / 590.0


def _articles(c: C.ItemContent, item_ids: np.ndarray) -> pd.DataFrame:
    pt = [C.PRODUCT_TYPES[j] for j in c.ptype]
    col = [C.COLOURS[j] for j in c.colour]
    app = [C.APPEARANCES[j] for j in c.appearance]
    idx = [C.INDEXES[j] for j in c.index]
    n = len(item_ids)
    df = pd.DataFrame({
        "article_id": item_ids,
        "product_code": [s[:7].lstrip("0") for s in item_ids],
        "prod_name": [C.item_title(c, i) for i in range(n)],
        "product_type_no": [x[0] for x in pt], "product_type_name": [x[1] for x in pt],
        "product_group_name": [x[2] for x in pt],
        "graphical_appearance_no": [x[0] for x in app], "graphical_appearance_name": [x[1] for x in app],
        "colour_group_code": [x[0] for x in col], "colour_group_name": [x[1] for x in col],
        "perceived_colour_value_id": [x[2] for x in col], "perceived_colour_value_name": [x[3] for x in col],
        "perceived_colour_master_id": [x[4] for x in col], "perceived_colour_master_name": [x[5] for x in col],
        "department_no": [x[6] for x in idx], "department_name": [x[7] for x in idx],
        "index_code": [x[0] for x in idx], "index_name": [x[1] for x in idx],
        "index_group_no": [x[2] for x in idx], "index_group_name": [x[3] for x in idx],
        "section_no": [x[4] for x in idx], "section_name": [x[5] for x in idx],
        "garment_group_no": [x[3] for x in pt], "garment_group_name": [x[4] for x in pt],
        "detail_desc": [C.item_description(c, i) for i in range(n)],
    })
    return df[ARTICLE_COLUMNS]


def _customers(cfg: SynthConfig, user_ids: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng([cfg.seed, 32])
    n = len(user_ids)
    news = rng.random(n) < 0.33
    postal = np.frombuffer(rng.bytes(32 * max(1, n // 4)).hex().encode(), dtype="S64").astype("U64")
    return pd.DataFrame({
        "customer_id": user_ids,
        "FN": np.where(news, 1.0, np.nan),
        "Active": np.where(news & (rng.random(n) < 0.97), 1.0, np.nan),
        "club_member_status": np.where(rng.random(n) < 0.93, "ACTIVE", "PRE-CREATE"),
        "fashion_news_frequency": np.where(news, "Regularly", "NONE"),
        "age": np.clip(np.round(rng.gamma(6.0, 6.0, n) + 16), 16, 99).astype(float),
        "postal_code": postal[rng.integers(0, len(postal), n)],  # postal codes are shared
    })[CUSTOMER_COLUMNS]
