"""The interfaces of phases 2-4 and their registries.

Every model is ``user encoder`` + ``fusion`` -> ego rows -> ``encoder`` (mf | lightgcn | freedom |
...) -> ``(user_emb [U, R], item_emb [I, R])``, then a scorer (CP over the dataset's extra modes):

    ŷ(u, i, m_1, ..., m_k) = Σ_r U[u,r] · I[i,r] · M_1[m_1,r] ··· M_k[m_k,r]

One interface per phase, each with a registry (``mrs.registry``) that the config, ``mrs compare``,
the CLI help and the tests read:

=============  ==================  ====================================================
registry       config key          interface
=============  ==================  ====================================================
``ENCODERS``   ``model.encoder``   :class:`Encoder`: ``(user_ego, item_ego) -> (user_emb, item_emb)``
``FUSIONS``    ``model.fusion``    :class:`Fusion`: ``(item_id_emb, features) -> item_ego``
``USERS``      ``model.user_encoder``  :class:`UserEncoder`: user ego rows and query rows
``SCORERS``    ``model.scorer``    :class:`Scorer`: query folding, scoring, full ranking
``CLOSED_FORM``  ``model.encoder``  whole models fitted in closed form (pop, itemknn, rp3beta, ease;
                                   :mod:`mrs.models.closed`): ``fit(train)``, no epochs
=============  ==================  ====================================================

Each plug-in class builds itself with ``from_config(cfg, ctx)`` from the :class:`BuildContext`
(sizes, train edges, features, precomputed artifacts): constructors take tensors and do no I/O.
The trainer, the evaluator and the negative sampler only use :class:`Recommender`'s methods.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor, nn

from mrs.registry import Registry, RegistryUnion

if TYPE_CHECKING:
    from mrs.models.config import ModelConfig
    from mrs.models.objective import Predictions

#: a fusion's embedding of item-id sequences for a sequential user encoder, bound to the model's
#: ID table and content (:meth:`Fusion.sequence_inputs`): ``(seq (B, L), positions (L, R),
#: dropout) -> (B, L, R)``
SequenceEmbedder = Callable[[Tensor, Tensor, nn.Module], Tensor]

ENCODERS: Registry[type["Encoder"]] = Registry("encoder", "model.encoder", ("mrs.models.encoders",))
FUSIONS: Registry[type["Fusion"]] = Registry("fusion", "model.fusion",
                                              ("mrs.models.fusion", "mrs.models.gated", "mrs.models.faerec"))
USERS: Registry[type["UserEncoder"]] = Registry("user encoder", "model.user_encoder",
                                                 ("mrs.models.users", "mrs.models.sequential"))
SCORERS: Registry[type["Scorer"]] = Registry("scorer", "model.scorer", ("mrs.models.cp",))
# whole models with no gradient training (mrs.models.closed); selected by model.encoder as well
CLOSED_FORM: Registry[type["Recommender"]] = Registry("closed-form model", "model.encoder", ("mrs.models.closed",))
ENCODER_CHOICES = RegistryUnion(ENCODERS, CLOSED_FORM)  # what model.encoder accepts


@dataclass
class BuildContext:
    """What a plug-in may build from (all on CPU; the trainer moves the model afterwards)."""

    n_users: int
    n_items: int
    users: Tensor           # (E,) long, deduplicated train edges sorted by user then item
    items: Tensor           # (E,) long
    item_counts: Tensor     # (I,) train interactions per item (repeats counted)
    mode_cardinalities: list[int]  # the extra modes the scorer uses ([] = modes off)
    features: dict[str, Tensor] = field(default_factory=dict)  # {modality: (I, d)} unit rows
    present: dict[str, Tensor] = field(default_factory=dict)   # {modality: (I,) bool} rows a store has
    artifacts: dict[str, Any] = field(default_factory=dict)    # from Encoder.build_artifacts

    @property
    def feature_dims(self) -> dict[str, int]:
        return {m: int(x.shape[1]) for m, x in self.features.items()}

    def present_of(self, modality: str) -> Tensor:
        """``(I,)`` bool: the items modality ``modality``'s store really has (all, if not given)."""
        return self.present.get(modality, torch.ones(self.n_items, dtype=torch.bool))


class Plugin(nn.Module):
    """What every plug-in shares: its registered name, and options of its own.

    A plug-in with options declares a dataclass ``Options``; users set them under
    ``model.options.<name>.<key>`` (validated like every config key: unknown keys are errors), and
    ``from_config`` reads them with ``cls.options(cfg)``. So a new plug-in's options need no edit
    of :class:`mrs.models.config.ModelConfig`.
    """

    plugin_name: str = ""        # set by the registry
    Options: type | None = None  # the plug-in's own options dataclass, if any

    @classmethod
    def options(cls, cfg: "ModelConfig") -> Any:
        """This plug-in's ``Options`` from ``cfg.options[plugin_name]`` (defaults where unset)."""
        from mrs.config import from_dict

        if cls.Options is None:
            return None
        return from_dict(cls.Options, dict(cfg.options.get(cls.plugin_name) or {}),
                         prefix=f"model.options.{cls.plugin_name}.")


class Encoder(Plugin):
    """Phase 3: ``(user_ego (U, R), item_ego (I, R)) -> (user_emb (U, R), item_emb (I, R))``."""

    @staticmethod
    def width(cfg: "ModelConfig", ctx: BuildContext) -> int:
        """``R``: the rows' width, ``model.dim`` times the configured fusion's blocks."""
        return cfg.dim * FUSIONS.get(cfg.fusion).blocks(ctx)

    @classmethod
    def from_config(cls, cfg: "ModelConfig", ctx: BuildContext) -> "Encoder":
        raise NotImplementedError

    @classmethod
    def build_artifacts(cls, cfg: "ModelConfig", ctx: BuildContext, cache_dir: Path | None) -> dict[str, Any]:
        """Expensive, cacheable inputs (FREEDOM's kNN graph), computed in an explicit step before
        ``from_config``; only this step may read or write ``cache_dir``. Default: none."""
        return {}

    @classmethod
    def artifact(cls, cfg: "ModelConfig", ctx: BuildContext, key: str) -> Any:
        """``ctx.artifacts[key]``, or, where the caller did not prepare it, built in memory by
        :meth:`build_artifacts` (never cached here)."""
        got = ctx.artifacts.get(key)
        return got if got is not None else cls.build_artifacts(cfg, ctx, None)[key]

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Called once before each training epoch (FREEDOM draws its pruned graph here)."""

    @classmethod
    def reads_user_rows(cls, cfg: "ModelConfig") -> bool:
        """Whether the item outputs read the user ego rows (graph propagation does; MF does not).
        A sequential user encoder keeps user rows trainable only where they are read."""
        return True

    #: whether :meth:`aux_losses` compares positives with negatives: then every training step
    #: samples at least one negative per prediction, whatever the main loss needs
    needs_negatives: bool = False
    #: whether the encoder cannot work without item content (VBPR, LATTICE): a dataset without
    #: ``data.features`` is refused with a one-line error naming ``model.encoder``
    needs_features: bool = False
    #: the main loss ``model.loss=auto`` picks for this encoder (``None``: the user encoder's);
    #: ``"none"`` marks an encoder whose ``aux_losses`` are its whole objective (BM3), the only
    #: kind that may run with ``model.loss=none``
    default_loss: str | None = None

    def aux_losses(self, batch: "Batch", user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """Extra loss terms of this encoder for one batch (already weighted). ``batch.users`` are
        the predictions' users (a sequence position's user), ``batch.neg`` their negatives,
        ``batch.queries`` their CP queries (the rows the scorer multiplies with ``item_emb``).
        Default: none."""
        return {}


class Fusion(Plugin):
    """Phase 2: item ID embeddings and content -> the item ego rows ``(I, n_blocks · r)``.

    ``needs_features``: whether the fusion reads content (``none`` does not). ``n_blocks``: how
    many ``r``-dim blocks the output has (late fusion: one per branch); the user side gets as many.
    """

    needs_features: bool = True
    n_blocks: int = 1
    #: whether :meth:`aux_losses` reads the predictions' negatives: then every training step
    #: samples at least one negative per prediction, whatever the main loss needs
    needs_negatives: bool = False
    #: whether :meth:`sequence_inputs` replaces a sequential user encoder's input stage (FAERec's
    #: gate acts on the position-embedded sequence); such a fusion needs a causal sequential
    #: ``model.user_encoder``, whose own input LayerNorm is then unused (frozen)
    embeds_sequences: bool = False

    @classmethod
    def from_config(cls, cfg: "ModelConfig", ctx: BuildContext) -> "Fusion":
        raise NotImplementedError

    @classmethod
    def blocks(cls, ctx: BuildContext) -> int:
        """``n_blocks`` of the fusion ``from_config`` would build from ``ctx``, known before it
        is built (an encoder that maps whole rows sizes its layers by it). Default: ``n_blocks``."""
        return cls.n_blocks

    def forward(self, item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """``item_ids (I, r)``, ``feats {m: (I, d_m)}`` -> ``(I, n_blocks · r)``."""
        raise NotImplementedError

    def score_scale(self) -> Tensor | None:
        """Per-dimension weights ``(n_blocks · r,)`` applied to the user side (late fusion's
        branch weights), or ``None``."""
        return None

    def weights(self) -> dict[str, float]:
        """Learned fusion weights by modality, for logging (α); empty when there are none."""
        return {}

    @property
    def aux_reads_whole_batch(self) -> bool:
        """Whether :meth:`aux_losses` compares the batch's items with each other (InfoNCE
        negatives, correlations): a data-parallel shard's terms would then differ from the
        global batch's, so torchrun refuses it. Default: no terms, so no."""
        return False

    def aux_losses(self, items: Tensor, item_ids: Tensor, feats: dict[str, Tensor],
                   predictions: "Predictions | None" = None) -> dict[str, Tensor]:
        """Extra loss terms over the batch's ``items`` (its targets and negatives, e.g. ID/semantic
        alignment); ``predictions``: the step's predictions themselves (their negatives and, for
        sequences, the input item at each position). Default: none."""
        return {}

    def sequence_inputs(self, seq: Tensor, positions: Tensor, dropout: nn.Module, *,
                        item_ids: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Only where :attr:`embeds_sequences`: the transformer's input rows ``(B, L, R)`` of item-id
        sequences ``seq (B, L)`` (padding = ``len(item_ids)``), given the position rows
        ``positions (L, R)`` and the user encoder's input ``dropout``, from the ID table
        ``item_ids (I, r)`` and the content ``feats``."""
        raise NotImplementedError(f"{type(self).__name__} does not embed sequences")

    def init_item_ids(self, item_ids: Tensor) -> None:
        """Called once by ``build_model`` with the model's ID table ``(I, r)`` (in place, no grad):
        e.g. gated fusion's PCA initialisation from the semantic features. Default: nothing."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called once before each training epoch (alignment curricula). Default: nothing."""


class UserEncoder(Plugin):
    """The user side: ego rows fed to the encoder, and the row a query uses.

    ``sequential``: the query row is computed from the user's recent items. Such an encoder holds
    one history per user ``(U, L)`` (item ids, padded with ``n_items``), which the trainer sets
    with :meth:`set_history` before evaluating a split (valid: the train items; test: train +
    valid), and trains on next-item sequences (:mod:`mrs.train.sequences`), not BPR triples.
    """

    sequential: bool = False
    default_loss: str = "bpr"  # the main loss model.loss=auto picks

    @classmethod
    def from_config(cls, cfg: "ModelConfig", ctx: BuildContext, dim: int) -> "UserEncoder":
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Initialise the weights. The model calls it once every module exists (after creating
        its item table), so the initialisation draws come in one fixed, seed-reproducible order."""

    def ego(self) -> Tensor:
        """``(U, R)`` user rows the encoder propagates."""
        raise NotImplementedError

    def query_rows(self, users: Tensor, user_emb: Tensor, item_emb: Tensor,
                   embed: SequenceEmbedder | None = None) -> Tensor:
        """``(B, R)`` user rows of a batch of queries (a sequential encoder reads histories here;
        ``embed``: the fusion's sequence embedding where it has one, else the item rows' tokens)."""
        return user_emb[users]

    def reg_rows(self, users: Tensor) -> list[Tensor]:
        """Parameter rows a batch touched, for the L2 term."""
        return []

    def set_history(self, history: Tensor) -> None:
        """Sequential encoders: the per-user histories ``(U, L)`` that :meth:`query_rows` reads."""
        raise NotImplementedError(f"{type(self).__name__} is not sequential")


class Scorer(Plugin):
    """Phase 3b: folds the user row and the query's modes into ``q (B, R)``; scores are ``q · I``."""

    @classmethod
    def from_config(cls, cfg: "ModelConfig", ctx: BuildContext, dim: int) -> "Scorer":
        raise NotImplementedError

    def mode_rows(self, modes: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def query(self, user_rows: Tensor, modes: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def score(q: Tensor, item_rows: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def rank_all(q: Tensor, item_emb: Tensor) -> Tensor:
        raise NotImplementedError


@dataclass
class Batch:
    """One BPR batch. ``modes`` has one column per extra mode (zero columns when there are none)."""

    users: Tensor  # (B,) long
    pos: Tensor    # (B,) long
    neg: Tensor | None  # (B,) long, or (B, K) for several negatives per positive; None: none sampled (ce)
    modes: Tensor  # (B, n_modes) long
    queries: Tensor | None = None  # (B, R): the CP queries (set by the objective for aux_losses)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(t if t is None else t.to(device, non_blocking=True)
                       for t in (self.users, self.pos, self.neg, self.modes, self.queries)))


class Recommender(nn.Module):
    """Base class. Subclasses implement ``encode`` and inherit scoring and the BPR loss hook.

    ``trains_by_gradient``: false for closed-form models (:mod:`mrs.models.closed`), which the
    trainer fits once instead of running epochs (:mod:`mrs.train.closed_form`)."""

    n_users: int
    n_items: int
    trains_by_gradient: bool = True

    def encode(self) -> tuple[Tensor, Tensor]:
        """Run the encoder: ``(user_emb (U, r), item_emb (I, r))``. Graph propagation happens here."""
        raise NotImplementedError

    def calculate_loss(self, batch: Batch, emb: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, dict[str, float]]:
        """Scalar training loss for one batch, plus named parts for logging (``bpr``, ``l2``, ...).
        ``emb`` reuses this step's ``encode()`` (shared with the dynamic negative sampler)."""
        raise NotImplementedError

    def score(self, users: Tensor, items: Tensor, modes: Tensor,
              emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Scores for given items: ``users (B,)``, ``items (B,)`` or ``(B, M)``, ``modes (B, k)``
        -> ``(B,)`` or ``(B, M)``. ``emb`` reuses a cached ``encode()`` result."""
        raise NotImplementedError

    def full_sort_predict(self, users: Tensor, modes: Tensor,
                          emb: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Scores of every item for each query: ``(B, n_items)``; one matmul per batch."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, generator: torch.Generator | None = None) -> None:
        """Per-epoch hook, passed on to the plug-ins (FREEDOM resamples its pruned graph). Default: nothing."""

    def fusion_weights(self) -> dict[str, float]:
        """Learned fusion weights α by modality, for logging; empty when the model has none."""
        return {}
