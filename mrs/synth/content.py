"""Item content that correlates with the planted clusters: attribute words, text and pictures.

Each latent cluster owns two product types, two colours, two materials, one graphical appearance,
one image shape and one index (department). An item takes each attribute from its cluster's own
set with probability ``1 - text_noise`` and from the whole vocabulary otherwise, so text and
images identify the cluster well but not perfectly: content helps cold and tail items, as in
real catalogues, without being a label leak.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mrs.synth.planted import Planted, SynthConfig

# (product_type_no, product_type_name, product_group_name, garment_group_no, garment_group_name)
PRODUCT_TYPES = [
    (272, "Trousers", "Garment Lower body", 1009, "Trousers"),
    (265, "Dress", "Garment Full body", 1013, "Dresses Ladies"),
    (252, "Sweater", "Garment Upper body", 1003, "Knitwear"),
    (255, "T-shirt", "Garment Upper body", 1002, "Jersey Basic"),
    (254, "Top", "Garment Upper body", 1005, "Jersey Fancy"),
    (258, "Blouse", "Garment Upper body", 1010, "Blouses"),
    (274, "Shorts", "Garment Lower body", 1025, "Shorts"),
    (253, "Skirt", "Garment Lower body", 1012, "Skirts"),
    (264, "Jacket", "Garment Upper body", 1007, "Outdoor"),
    (245, "Hoodie", "Garment Upper body", 1005, "Jersey Fancy"),
    (306, "Bra", "Underwear", 1017, "Under-, Nightwear"),
    (302, "Socks", "Socks & Tights", 1021, "Socks and Tights"),
    (273, "Leggings/Tights", "Garment Lower body", 1005, "Jersey Fancy"),
    (259, "Shirt", "Garment Upper body", 1011, "Shirts"),
    (245, "Cardigan", "Garment Upper body", 1003, "Knitwear"),
    (262, "Coat", "Garment Upper body", 1007, "Outdoor"),
    (59, "Swimwear bottom", "Swimwear", 1018, "Swimwear"),
    (298, "Bikini top", "Swimwear", 1018, "Swimwear"),
    (89, "Sneakers", "Shoes", 1020, "Shoes"),
    (93, "Boots", "Shoes", 1020, "Shoes"),
    (66, "Bag", "Accessories", 1019, "Accessories"),
    (80, "Hat/beanie", "Accessories", 1019, "Accessories"),
    (71, "Scarf", "Accessories", 1019, "Accessories"),
    (286, "Pyjama set", "Nightwear", 1017, "Under-, Nightwear"),
]
# (colour_group_code, colour_group_name, perceived value id, value name, master id, master name, RGB)
COLOURS = [
    (9, "Black", 4, "Dark", 5, "Black", (20, 20, 20)),
    (10, "White", 3, "Light", 9, "White", (245, 245, 240)),
    (73, "Dark Blue", 4, "Dark", 2, "Blue", (25, 40, 110)),
    (71, "Light Blue", 3, "Light", 2, "Blue", (140, 185, 230)),
    (12, "Light Beige", 3, "Light", 11, "Beige", (225, 205, 170)),
    (7, "Grey", 2, "Dusty Light", 12, "Grey", (128, 128, 128)),
    (42, "Red", 5, "Bright", 18, "Red", (200, 30, 35)),
    (53, "Dark Green", 4, "Dark", 19, "Green", (30, 90, 45)),
    (8, "Dark Grey", 4, "Dark", 12, "Grey", (70, 70, 70)),
    (51, "Light Pink", 3, "Light", 4, "Pink", (240, 180, 195)),
    (33, "Orange", 5, "Bright", 15, "Orange", (240, 130, 30)),
    (11, "Off White", 3, "Light", 9, "White", (235, 230, 215)),
    (19, "Yellow", 5, "Bright", 8, "Yellow", (245, 210, 40)),
    (23, "Khaki green", 7, "Medium Dusty", 20, "Khaki green", (120, 120, 70)),
    (93, "Turquoise", 1, "Medium", 21, "Turquoise", (40, 180, 175)),
    (62, "Lilac Purple", 2, "Dusty Light", 13, "Lilac Purple", (170, 130, 200)),
    (13, "Brown", 4, "Dark", 6, "Brown", (110, 70, 40)),
    (52, "Pink", 1, "Medium", 4, "Pink", (230, 100, 150)),
]
MATERIALS = ["cotton", "denim", "jersey", "wool", "linen", "viscose", "satin", "lace", "leather",
             "fleece", "chiffon", "rib-knit", "corduroy", "mesh", "velour", "canvas"]
# (graphical_appearance_no, graphical_appearance_name)
APPEARANCES = [(1010016, "Solid"), (1010017, "Stripe"), (1010001, "All over pattern"),
               (1010010, "Melange"), (1010004, "Check"), (1010014, "Dot"), (1010021, "Lace"),
               (1010008, "Front print"), (1010002, "Colour blocking"), (1010023, "Denim")]
# (index_code, index_name, index_group_no, index_group_name, section_no, section_name, dept_no, dept_name)
INDEXES = [("A", "Ladieswear", 1, "Ladieswear", 16, "Womens Everyday Collection", 1676, "Jersey"),
           ("D", "Divided", 2, "Divided", 53, "Divided Collection", 1747, "Divided Basics"),
           ("F", "Menswear", 3, "Menswear", 21, "Contemporary Casual", 7616, "Men Casual"),
           ("S", "Sport", 26, "Sport", 5, "Ladies H&M Sport", 8310, "Ladies Sport Bottoms"),
           ("I", "Children Sizes 134-170", 4, "Baby/Children", 46, "Young Girl", 6515, "Young Girl Jersey"),
           ("C", "Ladies Accessories", 1, "Ladieswear", 65, "Womens Big accessories", 3209, "Bags")]
ADJECTIVES = ["relaxed", "slim", "oversized", "cropped", "wrap", "fitted", "soft", "classic",
              "padded", "pleated", "seamless", "ribbed", "airy", "warm", "shiny", "textured"]
SHAPES = ["circle", "square", "triangle", "hstripes", "vstripes", "diamond", "cross", "ring"]
CONTEXT_LABELS = {"hm": ["store", "online"], "amazon2023": ["weekday", "weekend"]}
MONTH_LABELS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass
class ItemContent:
    """Per-item attribute indices into the vocabularies above, plus the cluster's image style."""

    ptype: np.ndarray       # (I,) index into PRODUCT_TYPES
    colour: np.ndarray      # (I,) index into COLOURS
    material: np.ndarray    # (I,) index into MATERIALS
    appearance: np.ndarray  # (I,) index into APPEARANCES
    index: np.ndarray       # (I,) index into INDEXES
    adjective: np.ndarray   # (I,) index into ADJECTIVES
    shape: np.ndarray       # (I,) index into SHAPES (cluster's, always: the image's main cue)


def item_content(p: Planted, cfg: SynthConfig) -> ItemContent:
    """Draw every item's attributes from its cluster's own words (vectorised, deterministic)."""
    rng = np.random.default_rng([cfg.seed, 4])
    K, I = len(p.cluster_factors), len(p.item_cluster)
    k = p.item_cluster

    def attr(n_vocab: int, per_cluster: int) -> np.ndarray:
        own = np.stack([rng.choice(n_vocab, per_cluster, replace=per_cluster > n_vocab) for _ in range(K)])
        pick = own[k, rng.integers(0, per_cluster, I)]
        noisy = rng.random(I) < cfg.text_noise
        return np.where(noisy, rng.integers(0, n_vocab, I), pick)

    return ItemContent(
        ptype=attr(len(PRODUCT_TYPES), 2), colour=attr(len(COLOURS), 2),
        material=attr(len(MATERIALS), 2), appearance=attr(len(APPEARANCES), 1),
        index=attr(len(INDEXES), 1), adjective=rng.integers(0, len(ADJECTIVES), I),
        shape=(np.arange(K) % len(SHAPES))[k])


def item_title(c: ItemContent, i: int) -> str:
    return (f"{ADJECTIVES[c.adjective[i]].capitalize()} {MATERIALS[c.material[i]]} "
            f"{PRODUCT_TYPES[c.ptype[i]][1].lower()}")


def item_description(c: ItemContent, i: int) -> str:
    pt, col, app = PRODUCT_TYPES[c.ptype[i]], COLOURS[c.colour[i]], APPEARANCES[c.appearance[i]]
    return (f"{ADJECTIVES[c.adjective[i]].capitalize()} {pt[1].lower()} in {col[1].lower()} "
            f"{MATERIALS[c.material[i]]}. {app[1]} look.")


def item_text(c: ItemContent, i: int) -> str:
    """The prepared-dataset text, in the spirit of what ``mrs prepare hm`` builds from articles.csv."""
    pt, col, app, idx = PRODUCT_TYPES[c.ptype[i]], COLOURS[c.colour[i]], APPEARANCES[c.appearance[i]], INDEXES[c.index[i]]
    return ". ".join([item_title(c, i), pt[1], pt[2], col[1], app[1], idx[5], pt[4], item_description(c, i)])


def render_image(c: ItemContent, i: int, seed: int, size: int = 64) -> bytes:
    """A small JPEG: the item's colour drawn as its cluster's shape, jittered, on a noisy background."""
    rng = np.random.default_rng([seed, 5, i])
    rgb = np.array(COLOURS[c.colour[i]][6], float)
    bg = np.full((size, size, 3), 200.0) + rng.normal(0, 12, (size, size, 3))
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    fill = tuple(int(v) for v in np.clip(rgb + rng.normal(0, 10, 3), 0, 255))
    s = size
    cx, cy = s / 2 + rng.uniform(-s / 10, s / 10, 2)
    r = s * rng.uniform(0.25, 0.35)
    shape = SHAPES[c.shape[i]]
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif shape == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "cross":
        w = r / 3
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
    elif shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(2, int(r / 3)))
    else:  # stripes across the whole picture
        step = max(4, int(s / rng.integers(5, 8)))
        for o in range(0, s, step):
            box = [0, o, s, o + step // 2] if shape == "hstripes" else [o, 0, o + step // 2, s]
            d.rectangle(box, fill=fill)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()
