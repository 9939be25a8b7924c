"""Model configuration (``model.*`` keys) and the factory that builds a model from prepared data.

``build_model`` is the only place that builds graphs and touches the kNN cache: constructors
have no side effects.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mrs import graph
from mrs.errors import MrsError
from mrs.losses import coupling_weights
from mrs.models.encoders import FreedomEncoder, LightGCNEncoder, MFEncoder
from mrs.models.fusion import build_fusion
from mrs.models.model import CPRecommender

log = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    encoder: Literal["mf", "lightgcn", "freedom"] = "lightgcn"  # phase-3 encoder
    dim: int = 64  # embedding size r (per block for late fusion)
    layers: int = 2  # user-item propagation layers K (lightgcn, freedom)
    modes: bool = True  # CP factors for the dataset's extra modes; false = plain user-item model
    fusion: Literal["none", "concat", "early", "late"] = "none"  # how item content enters; none = IDs only
    joint_dim: int = 64  # early fusion: shared space of the modality projections
    reg: float = 1e-4  # L2 λ on the batch's ego embedding rows, divided by the batch size
    # FREEDOM
    edge_drop: float = 0.8  # fraction of user-item edges dropped each epoch (FREEDOM's dropout)
    filtration: Literal["degree", "content"] = "degree"  # keep prob ∝ 1/sqrt(d_u d_i), or GRCN-style affinity
    filtration_temp: float = 0.1  # content filtration: keep prob ∝ exp(cos(user profile, item) / temp)
    knn_k: int = 10  # neighbours per item in the frozen item-item graph
    item_layers: int = 1  # propagation layers over the item-item graph
    item_graph_weight: float = 1.0  # weight of the kNN-propagated item representation
    # semantic coupling Σ_i μ_i ‖q_i − W e_i‖², μ_i = μ0 / log(2 + n_i)
    coupling_mu0: float = 0.0  # μ0; 0 = off


def _check_features(features: dict[str, Tensor], n_items: int) -> dict[str, Tensor]:
    out = {}
    for m, x in features.items():
        if x.dim() != 2 or x.shape[0] != n_items:
            raise MrsError(f"features[{m!r}]: expected shape (n_items={n_items}, d), got {tuple(x.shape)}")
        x = x.float()
        if not torch.isfinite(x).all():
            raise MrsError(f"features[{m!r}]: contains NaN or inf")
        out[m] = F.normalize(x, dim=1)  # unit rows: modalities on one scale (zero rows stay zero)
    return out


def build_model(cfg: ModelConfig, *, n_users: int, n_items: int, mode_cardinalities: list[int],
                train_users: np.ndarray, train_items: np.ndarray, features: dict[str, Tensor] | None = None,
                cache_dir: Path | None = None) -> CPRecommender:
    """Build the configured model on CPU (the trainer moves it to the device).

    ``mode_cardinalities``: the dataset's extra modes (ignored when ``cfg.modes`` is false).
    ``features``: ``{modality: (I, d)}`` aligned with the prepared item index, or ``None``.
    ``cache_dir``: where FREEDOM's item-item kNN graph is cached (``None``: not cached).
    """
    if cfg.dim < 1 or cfg.layers < 0:
        raise MrsError(f"model.dim must be >= 1 and model.layers >= 0 (got {cfg.dim}, {cfg.layers})")
    if not 0.0 <= cfg.edge_drop < 1.0:
        raise MrsError(f"model.edge_drop must be in [0, 1), got {cfg.edge_drop}")
    if cfg.filtration_temp <= 0 or cfg.knn_k < 1:
        raise MrsError(f"model.filtration_temp must be > 0 and model.knn_k >= 1 "
                       f"(got {cfg.filtration_temp}, {cfg.knn_k})")
    features = _check_features(features, n_items) if features else {}
    if cfg.fusion != "none" and not features:
        raise MrsError(f"model.fusion={cfg.fusion!r} needs item features (none were given)")
    if cfg.coupling_mu0 > 0 and not features:
        raise MrsError("model.coupling_mu0 > 0 needs item features (none were given)")
    users, items = graph.unique_edges(train_users, train_items, n_items)
    if users.numel() and (int(users.max()) >= n_users or int(items.max()) >= n_items):
        raise MrsError(f"train interactions reference ids beyond n_users={n_users} / n_items={n_items}")

    if cfg.encoder == "mf":
        encoder = MFEncoder()
    else:
        r_ui, r_iu = graph.bipartite_blocks(users, items, n_users, n_items)
        if cfg.encoder == "lightgcn":
            encoder = LightGCNEncoder(r_ui, r_iu, cfg.layers)
        elif cfg.encoder == "freedom":
            content = torch.cat(list(features.values()), dim=1) if features else None
            if cfg.filtration == "content":
                if content is None:
                    raise MrsError("model.filtration='content' needs item features (none were given)")
                weights = graph.affinity_keep_weights(graph.content_affinity(users, items, n_users, content),
                                                      cfg.filtration_temp)
            else:
                weights = graph.edge_keep_probs(users, items, n_users, n_items)
            if content is None:
                log.warning("freedom without item features: no item-item graph (pruned LightGCN only)")
                item_adj = None
            else:
                # Cosine on the concatenation of unit-normalised modalities = the mean of the
                # per-modality cosines, so the frozen graph reflects every modality equally.
                item_adj = graph.load_or_build_knn(content, cfg.knn_k, cache_dir)
            encoder = FreedomEncoder(r_ui, r_iu, cfg.layers, users, items, weights, cfg.edge_drop,
                                     item_adj, cfg.item_layers, cfg.item_graph_weight)
        else:
            raise MrsError(f"model.encoder: {cfg.encoder!r} is not one of ['mf', 'lightgcn', 'freedom']")

    dims = {m: x.shape[1] for m, x in features.items()}
    fusion = build_fusion(cfg.fusion, dims, cfg.dim, cfg.joint_dim)
    mu = None
    if cfg.coupling_mu0 > 0:
        counts = torch.bincount(torch.as_tensor(np.asarray(train_items)).long(), minlength=n_items)
        mu = coupling_weights(counts, cfg.coupling_mu0)
    return CPRecommender(n_users, n_items, cfg.dim, encoder, list(mode_cardinalities) if cfg.modes else [],
                         fusion=fusion, features=features if (fusion is not None or mu is not None) else None,
                         reg=cfg.reg, coupling_mu=mu)
