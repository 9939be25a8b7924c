"""Helpers for the feature tests: tiny prepared datasets and tiny images made on the fly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrs.data.prepared import write_prepared


def make_dataset(root, item_ids, texts=None, images=None, image_root=None):
    n = len(item_ids)
    items = pd.DataFrame({"item": np.arange(n), "item_id": [str(x) for x in item_ids],
                          "text": texts if texts is not None else [f"item {x}" for x in item_ids],
                          "image": images if images is not None else [None] * n})
    inter = pd.DataFrame({"user": [0] * n, "item": np.arange(n), "ts": np.arange(n), "split": [0] * n})
    users = pd.DataFrame({"user": [0], "user_id": ["u0"]})
    return write_prepared(root, inter, items, users, name="t", source="test", modes={}, params={},
                          input_checksum="x", extra={"image_root": str(image_root)} if image_root else None)


@pytest.fixture
def dataset_factory():
    return make_dataset


def save_images(root, n, size=(40, 30), seed=0):
    """``n`` random-ish RGB JPEGs (smooth gradients + noise, so encoders see structure)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        base = rng.integers(0, 255, 3)
        grad = np.linspace(0, 1, size[0])[None, :, None] * rng.integers(-120, 120, 3)
        arr = np.clip(base + grad + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        name = f"img{i:03d}.jpg"
        Image.fromarray(arr).save(root / name, quality=95)
        names.append(name)
    return names


@pytest.fixture
def images_factory():
    return save_images
