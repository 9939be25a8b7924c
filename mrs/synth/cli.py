"""``mrs synth``: raw files in a real source's format, with a planted ground truth beside them.

    mrs synth --format hm --out data/raw/synth --users 3000 --items 2000 --interactions 60000 --seed 0
    mrs prepare hm --raw data/raw/synth --out data/synth

Writes, atomically (a killed run leaves nothing at ``--out``):
the source files (see ``mrs.synth.hm`` / ``mrs.synth.amazon``), ``planted.npz`` (the factor
matrices ``U, G, C, T``, ``item_factors``, ``item_cluster``, ``item_popularity``,
``user_activity`` and the raw ``item_ids`` / ``user_ids`` in generator order) and
``planted.json`` (the config, the labels of each mode, each cluster's words and summary counts).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mrs.config import from_dict, merge_overrides, read_yaml
from mrs.errors import MrsError
from mrs.io import atomic_dir
from mrs.synth.planted import SynthConfig

FORMATS = ("hm", "amazon2023")


@dataclass
class SynthJob:
    format: str = "hm"            # hm | amazon2023: which raw format to write
    out: str = ""                 # output directory (written atomically)
    overwrite: bool = False       # replace an earlier `mrs synth` output at out (other files there stay)
    images: bool = True           # write the generated JPEGs (off for size benchmarks)
    image_size: int = 64          # pixels per side of each picture
    category: str = "Synth_Fashion"  # amazon2023: files are <category>.jsonl and meta_<category>.jsonl
    image_base_url: str = "https://images.synth.invalid/I"  # amazon2023: URL prefix in meta images
    chunk_size: int = 1 << 18     # interactions sampled and written per chunk (memory bound)
    missing_articles: float = 0.0     # hm quirk: share of articles without an articles.csv row or image
    int_article_ids: bool = False     # hm quirk: article_id as an integer, leading zero lost
    variant_asins: float = 0.0        # amazon2023 quirk: share of reviews whose asin is a variant of parent_asin
    model: SynthConfig = field(default_factory=SynthConfig)  # the planted model and sizes


def synthesize(job: SynthJob) -> dict:
    """Generate the raw dataset described by ``job``; return the summary written to planted.json."""
    from mrs.synth.content import CONTEXT_LABELS, MONTH_LABELS, item_content
    from mrs.synth.planted import plant
    from mrs.synth.truth import save_planted

    if job.format not in FORMATS:
        raise MrsError(f"format {job.format!r} is not one of {', '.join(FORMATS)}")
    if not 0.0 <= job.missing_articles < 1.0 or not 0.0 <= job.variant_asins <= 1.0:
        raise MrsError("missing_articles must be in [0, 1) and variant_asins in [0, 1]")
    if not job.out:
        raise MrsError("missing required option 'out' (give --out DIR)")
    from mrs.prep.outdir import check_out, synth_names, synth_owned

    carry = check_out(job.out, [], command="mrs synth", owned_by=synth_owned, overwrite=job.overwrite)
    clash = sorted(set(carry) & synth_names(asdict(job)))
    if clash:
        raise MrsError(f"--out {job.out}: holds {clash[0]!r}, not written by `mrs synth`, which this "
                       f"job would replace; move it away first")
    cfg = job.model
    t0 = time.perf_counter()
    p = plant(cfg)
    content = item_content(p, cfg)
    with atomic_dir(job.out, carry=carry) as tmp:
        if job.format == "hm":
            from mrs.synth.hm import write_hm
            res = write_hm(tmp, p, cfg, content, images=job.images, image_size=job.image_size,
                           chunk_size=job.chunk_size, missing_articles=job.missing_articles,
                           int_article_ids=job.int_article_ids)
        else:
            from mrs.synth.amazon import write_amazon2023
            res = write_amazon2023(tmp, p, cfg, content, category=job.category, images=job.images,
                                   image_size=job.image_size, image_base_url=job.image_base_url,
                                   chunk_size=job.chunk_size, variant_asins=job.variant_asins)
        save_planted(tmp / "planted.npz", p, res.pop("item_ids"), res.pop("user_ids"))
        summary = {
            "job": {k: v for k, v in asdict(job).items() if k not in ("out", "overwrite")},  # bytes independent of --out
            "modes": {"context": {"cardinality": cfg.n_contexts,
                                  "labels": CONTEXT_LABELS[job.format][:cfg.n_contexts]},
                      "time": {"cardinality": 12, "labels": MONTH_LABELS}},
            "n_users": cfg.n_users, "n_items": cfg.n_items, "n_interactions": cfg.n_interactions,
            "n_cold_items": int((p.item_popularity == 0).sum()),
            "rank": p.rank, "n_clusters": int(cfg.n_clusters),
            "clusters": _cluster_words(content, p),
            **({"sequential": {"seq_strength": cfg.seq_strength,
                               "cluster_successor": p.cluster_successor.tolist(),
                               "rule": "with prob seq_strength a user's next pick's cluster is "
                                       "cluster_successor[cluster of their previous pick]; the item "
                                       "inside it follows the cluster's popularity"}}
               if p.cluster_successor is not None else {}),
            **res,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        # planted.json leaves the timing out: same seed, same bytes.
        stable = {k: v for k, v in summary.items() if k != "seconds"}
        (tmp / "planted.json").write_text(json.dumps(stable, indent=2) + "\n")
    return summary


def _cluster_words(content, p) -> list[dict]:
    """Each cluster's most frequent product type, colour and material and its image shape."""
    from mrs.synth import content as C

    out = []
    for k in range(len(p.cluster_factors)):
        m = p.item_cluster == k
        if not m.any():
            out.append({"cluster": k, "n_items": 0})
            continue
        mode = lambda a: int(np.bincount(a[m]).argmax())  # noqa: E731
        c, s, q = (int(x) for x in p.cluster_slice[k])
        out.append({"cluster": k, "context": c, "style": s, "season": q, "n_items": int(m.sum()),
                    "product_type": C.PRODUCT_TYPES[mode(content.ptype)][1],
                    "colour": C.COLOURS[mode(content.colour)][1],
                    "material": C.MATERIALS[mode(content.material)],
                    "shape": C.SHAPES[int(content.shape[m][0])]})
    return out


def build_job(args: argparse.Namespace) -> SynthJob:
    """Defaults <- ``--config`` YAML <- explicit flags <- ``--set key=value``."""
    data: dict = read_yaml(args.config) if args.config else {}
    flags = {"format": args.format, "out": args.out, "image_size": args.image_size}
    if args.no_images:
        flags["images"] = False
    if args.overwrite:
        flags["overwrite"] = True
    data.update({k: v for k, v in flags.items() if v is not None})
    model = data.setdefault("model", {})
    for dest, key in (("users", "n_users"), ("items", "n_items"), ("interactions", "n_interactions"),
                      ("seed", "seed")):
        if getattr(args, dest) is not None:
            model[key] = getattr(args, dest)
    merge_overrides(data, args.set)
    return from_dict(SynthJob, data)


def _run(args: argparse.Namespace) -> int:
    job = build_job(args)
    s = synthesize(job)
    rows = s.get("n_transactions", s.get("n_reviews"))
    print(f"synth {job.format}: {rows:,} interactions, {s['n_users']:,} users, {s['n_items']:,} items "
          f"({s['n_cold_items']:,} cold), {s['n_images']:,} images -> {job.out} in {s['seconds']:.1f}s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate raw H&M / Amazon 2023 files with a planted structure",
                       description="Write raw H&M or Amazon 2023 files whose preferences follow a "
                                   "known CP tensor over user, item, context and month (planted.npz).")
    p.add_argument("--format", choices=FORMATS, help="raw format to write (default hm)")
    p.add_argument("--out", help="output directory for the raw files")
    p.add_argument("--users", type=int, help="number of users (default 1000)")
    p.add_argument("--items", type=int, help="number of items (default 2000)")
    p.add_argument("--interactions", type=int, help="number of interactions (default 20000)")
    p.add_argument("--seed", type=int, help="random seed (same seed, same bytes)")
    p.add_argument("--no-images", action="store_true", help="skip the JPEGs (size benchmarks)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier `mrs synth` output at --out (files it did not write stay)")
    p.add_argument("--image-size", type=int, help="picture side in pixels (default 64)")
    p.add_argument("--config", metavar="YAML", help="a SynthJob YAML (keys as below, model.* for the planted model)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key, e.g. --set model.season_strength=0 (no seasonality)")
    p.set_defaults(func=_run)
