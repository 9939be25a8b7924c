"""FREEDOM's item-item graph against a direct transcription of the original's formulas
(enoche/FREEDOM ``src/models/freedom.py``: ``get_knn_adj_mat``, ``compute_normalized_laplacian``,
``mm_adj = mm_image_weight * image_adj + (1 - mm_image_weight) * text_adj``), and missing content."""
from __future__ import annotations

import pytest
import torch

from mrs import graph
from mrs.models.config import ModelConfig, build_model
from mrs.models.encoders.freedom import modality_weights


def original_knn_adj(mm_embeddings: torch.Tensor, knn_k: int) -> torch.Tensor:
    """Transcribed from FREEDOM.get_knn_adj_mat + compute_normalized_laplacian (dense result)."""
    context_norm = mm_embeddings.div(torch.norm(mm_embeddings, p=2, dim=-1, keepdim=True))
    sim = torch.mm(context_norm, context_norm.transpose(1, 0))
    _, knn_ind = torch.topk(sim, knn_k, dim=-1)
    indices0 = torch.arange(knn_ind.shape[0]).unsqueeze(1).expand(-1, knn_k)
    indices = torch.stack((torch.flatten(indices0), torch.flatten(knn_ind)), 0)
    adj = torch.sparse_coo_tensor(indices, torch.ones_like(indices[0]), sim.size(), check_invariants=False)
    row_sum = 1e-7 + torch.sparse.sum(adj, -1).to_dense()
    r_inv_sqrt = torch.pow(row_sum, -0.5)
    values = r_inv_sqrt[indices[0]] * r_inv_sqrt[indices[1]]
    return torch.sparse_coo_tensor(indices, values, sim.size(), check_invariants=False).to_dense()


def test_per_modality_graph_equals_original_transcription():
    gen = torch.Generator().manual_seed(0)
    text, image = torch.randn(60, 12, generator=gen), torch.randn(60, 7, generator=gen)
    want = 0.1 * original_knn_adj(image, 10) + 0.9 * original_knn_adj(text, 10)  # (I, I)
    ones = torch.ones(60, dtype=torch.bool)
    w = modality_weights(["text-minilm", "image-effnet"], 0.1)
    assert w == {"image-effnet": 0.1, "text-minilm": pytest.approx(0.9)}
    # tiny blocks (3 rows) so the blocked search is exercised
    got = graph.freedom_knn_adj({"text-minilm": text, "image-effnet": image},
                                {"text-minilm": ones, "image-effnet": ones}, 10, w, max_bytes=4 * 60 * 3).to_dense()
    for i in range(60):
        a, b = set(want[i].nonzero().squeeze(1).tolist()), set(got[i].nonzero().squeeze(1).tolist())
        assert len(a & b) / len(a | b) == 1.0, i  # Jaccard of the neighbour sets
        assert i in b  # self included, as the original's topk over the full row
    assert (got - want).abs().max() <= 1e-6


def test_missing_content_gets_no_edges_and_no_hubs():
    gen = torch.Generator().manual_seed(1)
    n, k = 200, 10
    text, image = torch.randn(n, 16, generator=gen), torch.randn(n, 8, generator=gen)
    present = torch.arange(n) % 2 == 0  # half the items have neither text nor image
    filled = {m: torch.where(present[:, None], x, x[present].mean(0)) for m, x in (("text", text), ("image", image))}
    w = {"text": 0.9, "image": 0.1}
    adj = graph.freedom_knn_adj(filled, {"text": present, "image": present}, k, w).to_dense()
    in_degree = (adj > 0).sum(0)
    assert int(in_degree[present].max()) <= 3 * k  # bound; the planted hub case below breaks it
    absent = ~present
    assert torch.equal(adj[absent][:, absent], torch.eye(int(absent.sum())))  # only the self-loop
    assert adj[absent][:, present].abs().sum() == 0 and adj[present][:, absent].abs().sum() == 0
    assert torch.allclose(adj.sum(1), torch.ones(n))  # every row mixes to one
    # without the masks (every filled row "present"), the identical mean rows tie and the
    # tie-break sends their edges into a few items: the failure the masks prevent
    ones = torch.ones(n, dtype=torch.bool)
    hub = graph.freedom_knn_adj(filled, {"text": ones, "image": ones}, k, w).to_dense()
    assert int((hub > 0).sum(0).max()) > 3 * k


def test_partial_modalities_renormalise_and_concat_variant_masks():
    gen = torch.Generator().manual_seed(2)
    text, image = torch.randn(30, 5, generator=gen), torch.randn(30, 4, generator=gen)
    has_img = torch.arange(30) >= 10  # items 0..9: text only
    adj = graph.freedom_knn_adj({"text": text, "image": image}, {"text": torch.ones(30, dtype=torch.bool),
                                "image": has_img}, 5, {"text": 0.9, "image": 0.1}).to_dense()
    t_only = original_knn_adj(text, 5)
    assert torch.allclose(adj[:10], t_only[:10], atol=1e-6)  # text weight renormalised to 1
    assert adj[has_img][:, ~has_img].abs().sum() > 0  # text edges into them remain
    concat = graph.knn_adj(torch.cat([text, image], 1), 3, present=has_img).to_dense()
    assert concat[~has_img].abs().sum() == 0 and concat[:, ~has_img].abs().sum() == 0
    assert concat.diagonal().abs().sum() == 0  # the earlier variant excludes self


def test_knn_blocks_bound_memory_and_match_unblocked():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(3))
    r1, c1 = graph.knn_edges(x, 7, max_bytes=4 * 500 * 2)  # 2-row blocks
    r2, c2 = graph.knn_edges(x, 7, max_bytes=1 << 30)  # one block
    assert torch.equal(r1, r2) and torch.equal(c1.view(500, 7).sort(1).values, c2.view(500, 7).sort(1).values)


def test_modality_bpr_term_hand_computed():
    gen = torch.Generator().manual_seed(4)
    feats = {"text": torch.nn.functional.normalize(torch.randn(6, 3, generator=gen), dim=1)}
    cfg = ModelConfig(encoder="freedom", fusion="none", dim=4, layers=1, modes=False, knn_k=2,
                      modality_bpr_weight=0.5, edge_drop=0.0, reg=0.0)
    model = build_model(cfg, n_users=3, n_items=6, mode_cardinalities=[], train_users=[0, 1, 2, 2],
                        train_items=[0, 1, 2, 3], features=feats)
    from mrs.models.base import Batch
    batch = Batch(torch.tensor([0, 2]), torch.tensor([0, 3]), torch.tensor([4, 5]), torch.zeros(2, 0, dtype=torch.long))
    model.eval()
    ue, ie = model.encode()
    enc = model.encoder
    proj = enc.modality_proj[0](feats["text"])  # (I, r)
    u = ue[batch.users]
    want = -torch.nn.functional.logsigmoid((u * proj[[0, 3]]).sum(1) - (u * proj[[4, 5]]).sum(1)).mean() * 0.5
    got = enc.aux_losses(batch, ue, ie)["modality_bpr"]
    assert torch.allclose(got, want, atol=1e-6)
    loss, parts = model.calculate_loss(batch, (ue, ie))
    assert "modality_bpr" in parts and enc.modality_feats[0].requires_grad  # trainable copy, as published
    loss.backward()
    assert enc.modality_feats[0].grad is not None and enc.modality_proj[0].weight.grad.abs().sum() > 0
