"""The planted structure is present in the generated data, and it is what matters for the tail."""
from __future__ import annotations

import numpy as np
import pytest

from mrs.synth.content import COLOURS, item_content, item_text, render_image
from mrs.synth.planted import SynthConfig, plant, sample_all
from mrs.synth.prepared import temporal_split

MEDIUM = dict(n_users=800, n_items=600, n_interactions=25000, seed=0)


@pytest.fixture(scope="module")
def data():
    cfg = SynthConfig(**MEDIUM)
    p = plant(cfg)
    return cfg, p, sample_all(p, cfg, "channel")


def _per_user_tv(ch, n_users: int, n_clusters: int, group: np.ndarray) -> float:
    """Mean total-variation distance between a user's cluster choices in group 0 and group 1
    (users with >= 5 picks in both groups)."""
    M = np.zeros((n_users, 2, n_clusters))
    np.add.at(M, (ch.user, group, ch.cluster), 1)
    n = M.sum(2)
    ok = (n >= 5).all(1)
    P = M[ok] / n[ok][:, :, None]
    return float(0.5 * np.abs(P[:, 0] - P[:, 1]).sum(1).mean())


def test_long_tail_and_cold_items(data):
    cfg, p, ch = data
    counts = np.bincount(ch.item, minlength=cfg.n_items)
    top1 = np.sort(counts)[::-1][: cfg.n_items // 100].sum() / counts.sum()
    assert top1 > 0.08  # 1% of the items carry > 8% of the picks (uniform would be 1%)
    cold = p.item_popularity == 0
    assert cold.sum() == round(cfg.cold_fraction * cfg.n_items) and counts[cold].sum() == 0
    assert (counts <= 20).mean() > 0.3  # a real tail slice under the evaluator's threshold
    activity = np.bincount(ch.user, minlength=cfg.n_users)
    assert activity.min() >= 1 and activity.max() > 10 * np.median(activity)  # heavy-tailed users


def test_context_changes_choices_beyond_a_shuffled_control(data):
    cfg, p, ch = data
    rng = np.random.default_rng(0)
    real = _per_user_tv(ch, cfg.n_users, cfg.n_clusters, ch.context)
    shuffled = _per_user_tv(ch, cfg.n_users, cfg.n_clusters, rng.permutation(ch.context))
    assert real > shuffled + 0.2, (real, shuffled)
    # negative control: with no context gating (leak = 1) the measure drops to the shuffled level
    cfg0 = SynthConfig(**MEDIUM, context_leak=1.0)
    p0 = plant(cfg0)
    ch0 = sample_all(p0, cfg0, "channel")
    flat = _per_user_tv(ch0, cfg0.n_users, cfg0.n_clusters, ch0.context)
    assert abs(flat - shuffled) < 0.05, (flat, shuffled)


def test_season_changes_choices(data):
    cfg, p, ch = data
    rng = np.random.default_rng(0)
    winter_summer = np.isin(ch.month, [5, 6, 7]).astype(np.int64)  # Jun-Aug vs the rest
    real = _per_user_tv(ch, cfg.n_users, cfg.n_clusters, winter_summer)
    shuffled = _per_user_tv(ch, cfg.n_users, cfg.n_clusters, rng.permutation(winter_summer))
    assert real > shuffled + 0.1, (real, shuffled)


def _oracle_recall(cfg: SynthConfig, k: int = 20) -> dict[str, tuple[float, float]]:
    """Recall@k (all, tail) of the Bayes ranking that knows the planted factors, with and without
    the query's context and month, on a temporal test split (one query per test interaction)."""
    p = plant(cfg)
    ch = sample_all(p, cfg, "channel")
    split = temporal_split(ch.day)
    tr, te = split == 0, split == 2
    tail = np.bincount(ch.item[tr], minlength=cfg.n_items) <= 20
    pi = np.zeros((cfg.n_contexts, 12))
    np.add.at(pi, (ch.context[tr], ch.month[tr]), 1)
    pi /= pi.sum()
    u, c, m, item = ch.user[te], ch.context[te], ch.month[te], ch.item[te]
    with_modes = p.cluster_probs(u, c, m)  # (Q, K)
    without = sum(pi[a, b] * p.cluster_probs(u, np.full_like(c, a), np.full_like(m, b))
                  for a in range(cfg.n_contexts) for b in range(12))  # marginal over (c, t)
    out = {}
    for name, P in (("modes", with_modes), ("no_modes", without)):
        s = P[:, p.item_cluster] * p.item_popularity[None]  # (Q, I)
        top = np.argpartition(-s, k, axis=1)[:, :k]
        hit = (top == item[:, None]).any(1)
        out[name] = (hit.mean(), hit[tail[item]].mean())
    return out


def test_context_and_time_matter_for_the_tail():
    r = _oracle_recall(SynthConfig(**MEDIUM))
    assert r["modes"][0] > 1.5 * r["no_modes"][0]
    assert r["modes"][1] > 0.15 and r["modes"][1] > 5 * r["no_modes"][1], r
    # switched off, the same scores with or without modes (up to float ties in the top k)
    flat = _oracle_recall(SynthConfig(**MEDIUM, context_leak=1.0, season_strength=0.0))
    assert flat["modes"] == pytest.approx(flat["no_modes"], abs=0.01)


def test_text_predicts_the_cluster(data):
    cfg, p, _ = data
    content = item_content(p, cfg)
    docs = [set(item_text(content, i).lower().replace(".", "").split()) for i in range(cfg.n_items)]
    vocab = sorted(set().union(*docs))
    col = {w: j for j, w in enumerate(vocab)}
    X = np.zeros((cfg.n_items, len(vocab)))
    for i, d in enumerate(docs):
        X[i, [col[w] for w in d]] = 1

    def accuracy(labels: np.ndarray) -> float:  # nearest centroid, fit on even items, test on odd
        K = cfg.n_clusters
        fit, test = np.arange(0, cfg.n_items, 2), np.arange(1, cfg.n_items, 2)
        cent = np.zeros((K, X.shape[1]))
        np.add.at(cent, labels[fit], X[fit])
        cent /= np.maximum(1, np.bincount(labels[fit], minlength=K))[:, None]
        pred = (X[test] @ cent.T - 0.5 * (cent ** 2).sum(1)).argmax(1)
        return float((pred == labels[test]).mean())

    real = accuracy(p.item_cluster)
    control = accuracy(np.random.default_rng(0).permutation(p.item_cluster))
    assert real > 0.3 and control < 0.05, (real, control)  # chance is 1/96


def test_image_colour_follows_the_item(data):
    from io import BytesIO

    from PIL import Image

    cfg, p, _ = data
    content = item_content(p, cfg)
    palette = np.array([c[6] for c in COLOURS], float)
    right = 0
    for i in range(30):
        px = np.asarray(Image.open(BytesIO(render_image(content, i, cfg.seed)))).reshape(-1, 3).astype(float)
        fg = px[np.abs(px - 200).sum(1) > 60]  # pixels away from the grey background
        nearest = np.abs(palette - np.median(fg, 0)).sum(1).argmin()
        right += nearest == content.colour[i]
    assert right >= 24  # the picture's colour is the item's colour (grey-ish colours may blur)


def test_factorised_draw_matches_the_cp_probabilities():
    cfg = SynthConfig(n_users=5, n_items=400, n_interactions=10, seed=3)
    p = plant(cfg)
    B = 200_000
    u, c, m = np.full(B, 2), np.full(B, 1, np.int8), np.full(B, 7, np.int8)
    k = p.draw_clusters(u, c, m, np.random.default_rng(0))
    freq = np.bincount(k, minlength=cfg.n_clusters) / B
    exact = p.cluster_probs(u[:1], c[:1], m[:1])[0]
    assert np.abs(freq - exact).max() < 0.005 and abs(exact.sum() - 1) < 1e-9
    # the CP form: probabilities are the normalised sum over components of U * G * C * T
    q = p.user_factors[2] * p.context_factors[1] * p.time_factors[7]
    s = p.cluster_factors @ q
    assert np.allclose(exact, s / s.sum())
