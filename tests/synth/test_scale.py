"""``mrs.synth.scale.make_scale_dataset``: the benchmark dataset (bench_scale_step.py) at a tiny size."""
import numpy as np
import pytest

from mrs.data.prepared import SPLITS, load_prepared
from mrs.errors import MrsError
from mrs.synth.scale import make_scale_dataset


def test_tiny_scale_dataset_loads_with_the_requested_counts(tmp_path):
    out = make_scale_dataset(tmp_path / "d", n_users=300, n_items=120, n_interactions=3000, seed=1,
                             chunk_users=70)   # several chunks, the last one short
    ds = load_prepared(out)
    inter = ds.interactions
    assert (ds.n_users, ds.n_items, len(inter)) == (300, 120, 3000)
    assert ds.meta["n_interactions"] == 3000 and ds.mode_names == ["context", "time"]
    per_user = np.bincount(inter["user"], minlength=300)
    assert per_user.min() >= 5 and per_user.sum() == 3000
    assert not inter.duplicated(["user", "item"]).any()          # a 5-core has unique pairs
    # leave-last-out: exactly one valid and one test row per user, both after every train row
    for name in ("valid", "test"):
        assert (np.bincount(ds.split(name)["user"], minlength=300) == 1).all()
    last_train = inter[inter["split"] == SPLITS["train"]].groupby("user")["ts"].max()
    first_held = inter[inter["split"] > 0].groupby("user")["ts"].min()
    assert (last_train <= first_held).all()
    assert ds.meta["splits"] == {"train": 3000 - 600, "valid": 300, "test": 300}
    # popularity is skewed: the most popular tenth of items holds far more than a tenth of rows
    top = np.sort(np.bincount(inter["item"], minlength=120))[::-1]
    assert top[:12].sum() > 0.2 * 3000


def test_too_few_interactions_for_a_5_core(tmp_path):
    with pytest.raises(MrsError, match="cannot give each of 100 users 5"):
        make_scale_dataset(tmp_path / "d", n_users=100, n_items=50, n_interactions=499)
