"""ANN retrieval against exact full ranking; filters; the content path for a new item."""
from __future__ import annotations

import numpy as np
import pytest

from mrs.errors import MrsError
from mrs.serve.index import AnnIndex, IndexSpec
from mrs.serve.service import RecommendService


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)]))


def test_folded_ann_recovers_the_exact_ranking(served):
    _, _, model_dir = served
    exact = RecommendService.open(model_dir, retrieval="exact")
    ann = RecommendService.open(model_dir, retrieval="folded")
    assert not (model_dir / "index").exists()  # exported without one: built in memory, not written
    users = np.arange(len(exact.model.user_ids))
    for labels in ({"context": "*", "time": "*"}, {"context": exact.model.mode_labels["context"][1],
                                                   "time": exact.model.mode_labels["time"][3]}):
        want = exact.rank(users, labels, 20).items
        got = ann.rank(users, labels, 20).items
        assert _recall(got, want) >= 0.99
        # two_stage with every item as a candidate is exact; with few candidates it can only lose
        full = ann.rank(users, labels, 20, retrieval="two_stage")
        assert _recall(full.items, want) <= 1.0
        ann.candidates = len(exact.model.item_ids)
        assert _recall(ann.rank(users, labels, 20, retrieval="two_stage").items, want) >= 0.99
        ann.candidates = 300


def test_ann_on_planted_low_rank_factors_and_a_perfect_small_case():
    rng = np.random.default_rng(0)
    items = (rng.normal(size=(3000, 4)) @ rng.normal(size=(4, 32))).astype(np.float32)
    q = (rng.normal(size=(200, 4)) @ rng.normal(size=(4, 32))).astype(np.float32)
    want = np.argsort(-(q @ items.T), 1)[:, :20]
    assert _recall(AnnIndex.build(items).search(q, 20), want) >= 0.99
    flat = AnnIndex.build(items[:10], IndexSpec(ef_search=16))  # 10 items: HNSW sees them all
    assert _recall(flat.search(q, 5), np.argsort(-(q @ items[:10].T), 1)[:, :5]) == 1.0


@pytest.mark.parametrize("retrieval", ["exact", "folded", "two_stage"])
def test_filters_exclude_seen_and_restrict(served, retrieval):
    _, _, model_dir = served
    svc = RecommendService.open(model_dir, retrieval=retrieval)
    m = svc.model
    for u in range(0, len(m.user_ids), 15):
        seen = {m.item_ids[j] for j in m.seen(u)}
        r = svc.recommend(m.user_ids[u], k=12, exclude_seen=True)
        ids = [x["id"] for x in r["items"]]
        assert len(ids) == 12 and not seen & set(ids)
        scores = [x["score"] for x in r["items"]]
        assert scores == sorted(scores, reverse=True)
        subset = m.item_ids[::7]
        r = svc.recommend(m.user_ids[u], k=5, restrict=subset)
        assert {x["id"] for x in r["items"]} <= set(subset)
        # the subset ranking is exact: the 5 best of the subset by the exact score
        q = m.query(np.array([u]), m.resolve_modes({})).numpy()[0]
        idx = np.array([m.item_index[x] for x in subset])
        best = idx[np.argsort(-(m.item.numpy()[idx] @ q))[:5]]
        assert [x["id"] for x in r["items"]] == [m.item_ids[j] for j in best]


def test_unknown_user_gets_the_contexts_popular_items(served):
    _, _, model_dir = served
    svc = RecommendService.open(model_dir, retrieval="exact")
    m = svc.model
    ctx = m.mode_labels["context"][1]
    r = svc.recommend("no-such-user", {"context": ctx}, k=5)
    assert r["fallback"] == "popular" and r["modes"]["context"] == ctx
    counts = m.counts_by_mode0[1]
    assert [x["score"] for x in r["items"]] == sorted(counts, reverse=True)[:5]


def test_bad_requests_name_the_field(served):
    _, _, model_dir = served
    svc = RecommendService.open(model_dir, retrieval="exact")
    u = svc.model.user_ids[0]
    for kwargs, field in [({"k": 0}, "k"), ({"k": 10 ** 6}, "k"), ({"modes": {"context": "moon"}}, "context"),
                          ({"modes": {"weather": "rain"}}, "weather"), ({"restrict": ["nope"]}, "restrict"),
                          ({"history": ["x"]}, "history"), ({"retrieval": "magic"}, "retrieval")]:
        with pytest.raises(MrsError, match=f"^{field}:"):
            svc.recommend(u, **kwargs)


def test_a_new_item_with_matching_content_reaches_the_users_top_20(served):
    """Planted clusters: a new item whose features are its cluster's mean content is recommended,
    with no interaction, to users whose train items come mostly from that cluster."""
    import pandas as pd

    from mrs.features import load_features

    data, _, model_dir = served
    svc = RecommendService.open(model_dir, retrieval="folded")
    m = svc.model
    items = pd.read_parquet(data / "items.parquet").sort_values("item")
    inter = pd.read_parquet(data / "interactions.parquet")
    inter = inter[inter["split"] == 0].merge(items[["item", "cluster"]], on="item")
    share = inter.groupby("user")["cluster"].agg(lambda c: c.value_counts(normalize=True).iloc[0])
    fav = inter.groupby("user")["cluster"].agg(lambda c: c.value_counts().index[0])
    least = inter.groupby("user")["cluster"].agg(lambda c: c.value_counts().index[-1])
    fans = share[(share >= 0.5) & (least != fav)].index[:20]  # users with a clear favourite cluster
    assert len(fans) >= 10
    feats = {name: load_features(data, name)[0].numpy() for name in ("text-synth", "image-synth")}

    def cluster_item(cluster: int) -> dict:
        members = items["item"][items["cluster"] == cluster].to_numpy()
        return {name: x[members].mean(0).tolist() for name, x in feats.items()}

    hits = control = 0
    for u in fans:
        # one new item of the user's favourite cluster, one of the cluster the user bought least
        svc.add_item(f"fav-{u}", cluster_item(fav[u]))
        svc.add_item(f"least-{u}", cluster_item(least[u]))
        ids = [x["id"] for x in svc.recommend(m.user_ids[u], k=20, exclude_seen=True)["items"]]
        hits += f"fav-{u}" in ids
        control += f"least-{u}" in ids
    assert hits >= 0.7 * len(fans) and control <= 0.3 * len(fans), (hits, control, len(fans))
    with pytest.raises(MrsError, match="^id:"):  # ids are unique
        svc.add_item(f"fav-{fans[0]}", {name: x[0].tolist() for name, x in feats.items()})
    with pytest.raises(MrsError, match="^features.image-synth:"):
        svc.add_item("short", {"text-synth": feats["text-synth"][0].tolist(), "image-synth": [1.0]})


@pytest.mark.slow
def test_a_new_item_from_raw_text_goes_through_minilm_and_the_projection(tmp_path):
    """With a MiniLM text store in the model, ``text`` is embedded as the store was, then projected."""
    from mrs.features.text import TextEncoder
    from mrs.io import atomic_dir
    from mrs.serve.export import FORMAT, write_model_dir

    try:
        enc = TextEncoder("minilm")
    except MrsError as e:
        pytest.skip(str(e))
    rng = np.random.default_rng(0)
    R, n = 8, 30
    t = {"user": rng.normal(size=(5, R)).astype(np.float32), "item": rng.normal(size=(n, R)).astype(np.float32),
         "item_counts": np.ones(n, np.float32), "seen_indptr": np.zeros(6, np.int64),
         "seen_indices": np.zeros(0, np.int32), "content_w": rng.normal(size=(enc.dim, R)).astype(np.float32),
         "content_b": np.zeros(R, np.float32), "content_mean": np.zeros(enc.dim, np.float32)}
    meta = {"format": FORMAT, "n_users": 5, "n_items": n, "dim": R, "modes": [], "user_encoder": "id",
            "sequential": False, "source": {}, "user_ids": [f"u{j}" for j in range(5)],
            "item_ids": [f"i{j}" for j in range(n)],
            "content": {"modalities": [{"name": "text-minilm", "dim": enc.dim, "modality": "text",
                                        "encoder": "minilm", "max_length": 128}]}}
    with atomic_dir(tmp_path / "m") as tmp:
        write_model_dir(tmp, t, meta)
    svc = RecommendService.open(tmp_path / "m", retrieval="exact")
    svc.add_item("dress", text="red cotton summer dress")
    x = enc(**enc.tokenize(["red cotton summer dress"]))[0].numpy()
    np.testing.assert_allclose(svc.model.added.factors[0], x @ t["content_w"], rtol=1e-4, atol=1e-4)
    with pytest.raises(MrsError, match="^text: give either"):
        svc.add_item("both", features={"text-minilm": x.tolist()}, text="x")
