"""Model configuration (``model.*`` keys) and the factory that builds a model from prepared data.

``model.encoder``, ``model.fusion``, ``model.user_encoder`` and ``model.scorer`` name plug-ins in the
registries of :mod:`mrs.models.base`; the config accepts exactly the registered names.

Building is two explicit steps: :func:`build_artifacts` computes (and, given a cache directory,
reads or writes) the expensive inputs such as FREEDOM's kNN graph; :func:`build_model` then
builds the modules from tensors, with no I/O. Constructors have no side effects.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mrs import graph
from mrs.errors import MrsError
from mrs.losses import LOSSES, coupling_weights
from mrs.models.base import (CLOSED_FORM, ENCODER_CHOICES, ENCODERS, FUSIONS, SCORERS, USERS, BuildContext,
                             Recommender)
from mrs.models.model import CPRecommender

log = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    encoder: str = field(default="lightgcn", metadata={"registry": ENCODER_CHOICES})  # phase 3: mf | lightgcn | freedom | ..., or a closed-form model: pop | itemknn | rp3beta | ease
    user_encoder: str = field(default="id", metadata={"registry": USERS})  # where a query's user row comes from
    scorer: str = field(default="cp", metadata={"registry": SCORERS})  # CP over the extra modes
    dim: int = 64  # embedding size r (per block for late fusion)
    layers: int = 2  # user-item propagation layers K (lightgcn, freedom)
    graph_backend: Literal["csr", "pyg"] = "csr"  # lightgcn/freedom propagation: our torch.sparse CSR blocks (faster per Sports epoch: experiments/benchmarks/README.md) | PyG's LGConv on an EdgeIndex
    modes: bool = True  # CP factors for the dataset's extra modes; false = plain user-item model
    fusion: str = field(default="none", metadata={"registry": FUSIONS})  # how item content enters: none | concat | early | late | gated | faerec
    joint_dim: int = 64  # early fusion: shared space of the modality projections
    reg: float = 1e-4  # L2 λ on the batch's ego embedding rows, divided by the batch size
    # main ranking loss (mrs.losses.LOSSES): bpr | ce | sampled_softmax | bce | none; auto = the encoder's
    # own (none for bm3, whose terms are its objective), else the user encoder's usual one (bpr for
    # id rows, as MF/LightGCN; ce, the full softmax, for sasrec/bert4rec)
    loss: str = "auto"
    loss_negatives: int = 100  # sampled_softmax: uniform negatives per prediction
    # sampled_softmax: "prediction" draws loss_negatives items for every prediction (as RecTools'
    # SASRec; id users: among their non-train items); "batch" draws one set uniformly over all items
    # (only a draw equal to a prediction's target is masked) shared by the step, scored by one matmul
    # (the same estimator in expectation, ~N times fewer gathered rows: what makes 256 negatives
    # affordable on a CPU)
    loss_negatives_scope: Literal["prediction", "batch"] = "prediction"
    # FREEDOM
    edge_drop: float = 0.8  # fraction of user-item edges dropped each epoch (FREEDOM's dropout)
    filtration: Literal["degree", "content"] = "degree"  # keep prob ∝ 1/sqrt(d_u d_i), or GRCN-style affinity
    filtration_temp: float = 0.1  # content filtration: keep prob ∝ exp(cos(user profile, item) / temp)
    knn_k: int = 10  # neighbours per item in the frozen item-item graph
    knn_graph: Literal["freedom", "concat"] = "freedom"  # per-modality kNN (self incl.) mixed by mm_image_weight, as published | one graph over concatenated modalities, self excluded
    mm_image_weight: float = 0.1  # FREEDOM: S = w·S_image + (1 - w)·S_text
    modality_bpr_weight: float = 1e-4  # FREEDOM's reg_weight on Σ_m BPR(u, W_m x^m_i, W_m x^m_j) (MMRec grid 0, 1e-5, 1e-4, 1e-3)
    freedom_tune_features: bool = True  # FREEDOM trains its feature copies (freeze=False)
    item_layers: int = 1  # propagation layers over the item-item graph
    item_graph_weight: float = 1.0  # weight of the kNN-propagated item representation
    # semantic coupling Σ_i μ_i ‖q_i − W e_i‖², μ_i = μ0 / log(2 + n_i)
    coupling_mu0: float = 0.0  # μ0; 0 = off
    # sequential user encoders (user_encoder: sasrec | bert4rec; mrs.models.sequential)
    seq_len: int = 50  # L: the last L items before the query / the target
    seq_blocks: int = 2  # transformer blocks
    seq_heads: int = 2  # attention heads (must divide the embedding size)
    seq_dropout: float = 0.2  # dropout on the input embeddings and inside the blocks
    seq_ties: Literal["file", "shuffle"] = "file"  # order of same-ts interactions: file order, or seeded shuffle
    seq_mask_prob: float = 0.2  # bert4rec: share of positions masked (cloze)
    # gated fusion (fusion: gated; mrs.models.gated) and FAERec-style ID/semantic alignment
    gate_pca_init: bool = True  # initialise the ID table from a PCA of the semantic features
    align_item: float = 0.0  # weight of item-level InfoNCE between e_id and φ(e_sem); 0 = off
    align_item_temp: float = 0.2  # InfoNCE temperature τ
    align_feature: float = 0.0  # weight of feature-level alignment ‖corr(E_id) − corr(φ(E_sem))‖²_F / r²
    align_schedule: int = 0  # curriculum: feature-level weight ramps linearly 0 -> full over N epochs (0: full from the start)
    # options of plug-ins that declare their own `Options` dataclass, by plug-in name:
    # --set model.options.<plug-in>.<key>=value (see mrs/models/README.md)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The main loss is ``auto`` or a registered one; plug-in options must belong to a
        selected plug-in and match its ``Options`` fields."""
        if self.loss != "auto" and self.loss not in LOSSES:
            raise MrsError(f"config key 'model.loss': {self.loss!r} is not one of {['auto', *LOSSES.names()]}")
        if self.loss_negatives < 1:
            raise MrsError(f"config key 'model.loss_negatives' must be >= 1, got {self.loss_negatives}")
        selected = {name: reg.get(name) for reg, name in ((ENCODER_CHOICES, self.encoder), (FUSIONS, self.fusion),
                                                           (USERS, self.user_encoder), (SCORERS, self.scorer))
                    if name in reg}
        if self.loss == "none" and self.encoder in ENCODERS and ENCODERS.get(self.encoder).default_loss != "none":
            raise MrsError(f"config key 'model.loss': 'none' trains nothing with model.encoder={self.encoder!r} "
                           f"(only an encoder with its own objective, such as bm3, runs without a main loss)")
        for name, value in self.options.items():
            if name not in selected:
                raise MrsError(f"config key 'model.options.{name}': no selected plug-in is called {name!r} "
                               f"(selected: {sorted(selected)})")
            plugin = selected[name]
            if plugin.Options is None:
                raise MrsError(f"config key 'model.options.{name}': plug-in {name!r} takes no options")
            if not isinstance(value, dict):
                raise MrsError(f"config key 'model.options.{name}' must be a mapping, got {value!r}")
            plugin.options(self)  # unknown keys and wrong types are errors naming the key


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


def _check_content_needed(cfg: ModelConfig, features: dict[str, Tensor]) -> None:
    """The one check that a plug-in reading content has some (``needs_features``), whether the
    context came from :func:`build_context` or was handed to :func:`build_model`."""
    if features:
        return
    if FUSIONS.get(cfg.fusion).needs_features:
        raise MrsError(f"model.fusion={cfg.fusion!r} needs item features (none were given)")
    if cfg.encoder in ENCODERS and ENCODERS.get(cfg.encoder).needs_features:
        raise MrsError(f"model.encoder={cfg.encoder!r} needs item features (none were given: set data.features)")
    if cfg.coupling_mu0 > 0:
        raise MrsError("model.coupling_mu0 > 0 needs item features (none were given)")


def build_context(cfg: ModelConfig, *, n_users: int, n_items: int, mode_cardinalities: list[int],
                  train_users: np.ndarray, train_items: np.ndarray,
                  features: dict[str, Tensor] | None = None,
                  present: dict[str, Tensor] | None = None) -> BuildContext:
    """Validate the configuration against the data and collect what the plug-ins build from."""
    if cfg.dim < 1 or cfg.layers < 0:
        raise MrsError(f"model.dim must be >= 1 and model.layers >= 0 (got {cfg.dim}, {cfg.layers})")
    if not 0.0 <= cfg.edge_drop < 1.0:
        raise MrsError(f"model.edge_drop must be in [0, 1), got {cfg.edge_drop}")
    if not 0.0 <= cfg.mm_image_weight <= 1.0 or cfg.modality_bpr_weight < 0:
        raise MrsError(f"model.mm_image_weight must be in [0, 1] and model.modality_bpr_weight >= 0 "
                       f"(got {cfg.mm_image_weight}, {cfg.modality_bpr_weight})")
    if cfg.filtration_temp <= 0 or cfg.knn_k < 1:
        raise MrsError(f"model.filtration_temp must be > 0 and model.knn_k >= 1 "
                       f"(got {cfg.filtration_temp}, {cfg.knn_k})")
    features = _check_features(features, n_items) if features else {}
    _check_content_needed(cfg, features)
    for key in ("align_item", "align_feature"):
        if getattr(cfg, key) > 0 and cfg.fusion != "gated":
            raise MrsError(f"config key 'model.{key}' > 0 needs model.fusion=gated (got {cfg.fusion!r})")
    users, items = graph.unique_edges(train_users, train_items, n_items)
    if users.numel() and (int(users.max()) >= n_users or int(items.max()) >= n_items):
        raise MrsError(f"train interactions reference ids beyond n_users={n_users} / n_items={n_items}")
    counts = torch.bincount(torch.as_tensor(np.asarray(train_items)).long(), minlength=n_items)
    present = present or {m: torch.ones(n_items, dtype=torch.bool) for m in features}
    return BuildContext(n_users, n_items, users, items, counts,
                        list(mode_cardinalities) if cfg.modes else [], features, dict(present))


def build_artifacts(cfg: ModelConfig, ctx: BuildContext, cache_dir: Path | None = None) -> dict[str, Any]:
    """The explicit step for expensive, cacheable inputs (only here is ``cache_dir`` read or
    written); stores them in ``ctx.artifacts`` and returns them."""
    ctx.artifacts.update(ENCODER_CHOICES.get(cfg.encoder).build_artifacts(cfg, ctx, cache_dir))
    return ctx.artifacts


def build_model(cfg: ModelConfig, ctx: BuildContext | None = None, **data: Any) -> "CPRecommender | Recommender":
    """Build the configured model on CPU (the trainer moves it to the device); no I/O. A closed-form
    ``model.encoder`` gives its unfitted :class:`~mrs.models.closed.base.ClosedFormRecommender`.

    Either a :class:`BuildContext` (``build_context`` + optionally ``build_artifacts``), or the
    keyword arguments of :func:`build_context` (``n_users``, ``n_items``, ``mode_cardinalities``,
    ``train_users``, ``train_items``, ``features``), in which case artifacts are computed in
    memory and never cached.
    """
    if ctx is None:
        ctx = build_context(cfg, **data)
    elif data:
        raise TypeError("build_model: give a BuildContext or its keyword arguments, not both")
    else:
        _check_content_needed(cfg, ctx.features)
    if cfg.encoder in CLOSED_FORM:  # a whole model, fitted by the trainer (mrs.train.closed_form)
        return CLOSED_FORM.get(cfg.encoder).from_config(cfg, ctx)
    encoder = ENCODERS.get(cfg.encoder).from_config(cfg, ctx)
    fusion = FUSIONS.get(cfg.fusion).from_config(cfg, ctx)
    dim = cfg.dim * fusion.n_blocks  # the user side has one block per item block
    user_encoder = USERS.get(cfg.user_encoder).from_config(cfg, ctx, dim)
    scorer = SCORERS.get(cfg.scorer).from_config(cfg, ctx, dim)
    mu = coupling_weights(ctx.item_counts, cfg.coupling_mu0) if cfg.coupling_mu0 > 0 else None
    keep_features = fusion.needs_features or mu is not None
    loss = cfg.loss if cfg.loss != "auto" else (type(encoder).default_loss or user_encoder.default_loss)
    if cfg.loss_negatives_scope == "batch":
        own = [n for n, x in ((cfg.encoder, encoder), (cfg.fusion, fusion)) if getattr(x, "needs_negatives", False)]
        if loss != "sampled_softmax" or own:
            raise MrsError("config key 'model.loss_negatives_scope': 'batch' shares sampled_softmax's negatives, "
                           + (f"but {own[0]!r} compares each prediction with its own negative" if own
                              else f"but the main loss is {loss!r}") + "; use 'prediction'")
    model = CPRecommender(ctx.n_users, ctx.n_items, cfg.dim, encoder, fusion, user_encoder, scorer,
                          features=ctx.features if keep_features else None, reg=cfg.reg, coupling_mu=mu,
                          loss=loss, loss_negatives=cfg.loss_negatives,
                          shared_negatives=cfg.loss_negatives_scope == "batch")
    with torch.no_grad():
        fusion.init_item_ids(model.item_emb.weight)  # e.g. gated fusion's PCA initialisation
    return model
