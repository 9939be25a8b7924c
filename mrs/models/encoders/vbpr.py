"""VBPR (He & McAuley, AAAI 2016): MF whose item vector has an ID block and a content block."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mrs.errors import MrsError
from mrs.models.base import ENCODERS, FUSIONS, Batch, BuildContext, Encoder


@dataclass
class VBPROptions:
    """``model.options.vbpr.*``."""

    content_dim: int = 0  # c: width of the content block E f_i; 0 = half the embedding (MMRec's split)
    reg_weight: float = 1e-4  # MMRec's reg_weight on EmbLoss(u, i+, i-) (its grid: 2.0 ... 1e-5)

    def __post_init__(self) -> None:
        for key in ("content_dim", "reg_weight"):
            if getattr(self, key) < 0:
                raise MrsError(f"config key 'model.options.vbpr.{key}' must be >= 0, got {getattr(self, key)}")


@ENCODERS.register("vbpr", rank=3)
class VBPREncoder(Encoder):
    r"""VBPR: the item row is an ID block next to a linear map of the item's content.

    MMRec (enoche/MMRec@e775373 ``src/models/vbpr.py``) scores

    .. math::
        \hat y_{ui} = \theta_u^\top \begin{pmatrix} \gamma_i \\ E f_i + b \end{pmatrix},
        \qquad f_i = [x^{text}_i \,\|\, x^{image}_i]

    with :math:`\theta_u \in \mathbb{R}^{2d}` (``u_embedding``, ``2·embedding_size`` wide),
    :math:`\gamma_i \in \mathbb{R}^{d}` (``i_embedding``) and one ``nn.Linear`` :math:`E` over the
    concatenated modalities (one modality alone when the other is missing; the raw features stay
    frozen), trained on

    .. math::
        \mathcal{L} = -\overline{\log(10^{-10} + \sigma(\hat y_{ui} - \hat y_{uj}))}
          + \lambda \, \frac{\|\Theta_B\| + \|I^+_B\| + \|I^-_B\|}{B}

    where the regulariser (MMRec's ``EmbLoss``) takes the **Frobenius norms, not squared**, of
    the batch's user rows and *output* item rows (so :math:`E` is regularised through them).

    Here the embedding width ``R = model.dim`` holds both blocks: the user ego row is
    :math:`\theta_u`, the item output is ``[item_ego[:, :R-c], E f_i + b]`` with ``c =
    content_dim`` (default ``R/2``; MMRec's ``embedding_size=64`` is ``model.dim=128``). The
    item ID table's last ``c`` columns are not read (they only get the L2 pull to zero). The main
    loss is ``model.loss`` (``bpr``: -mean log σ, MMRec's 1e-10 inside the log omitted);
    ``aux_losses`` adds the ``EmbLoss`` term as ``emb_reg`` (``reg_weight``; user rows are the
    propagated user rows, the CP modes not folded in). ``model.reg`` adds mrs's squared L2 on
    the ego rows on top: ``model.reg=0`` is MMRec's loss exactly. Initialisation as MMRec:
    ``E`` xavier-normal, bias zero (the ID tables are the model's, xavier-uniform as MMRec's).
    With CP modes the query ``θ_u ⊙ Π_j M_j[m_j]`` replaces ``θ_u``. With a fusion (``concat``,
    ``early``, ``gated``) the ID block is the first ``R-c`` columns of the fused row; ``late``
    (one block per branch) is refused, as the content block would overwrite its last branch.

    Args:
        content: ``(I, Σ d_m)`` concatenated modalities. content_dim: c. reg_weight: λ.
    """

    Options = VBPROptions
    needs_features = True

    def __init__(self, content: Tensor, content_dim: int, reg_weight: float):
        super().__init__()
        self.register_buffer("content", content.float(), persistent=False)
        self.proj = nn.Linear(content.shape[1], content_dim)  # E, b
        nn.init.xavier_normal_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.reg_weight = reg_weight

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext) -> "VBPREncoder":
        opts = cls.options(cfg)
        if FUSIONS.get(cfg.fusion).blocks(ctx) > 1:
            raise MrsError(f"config key 'model.fusion': {cfg.fusion!r} gives one block per branch, and VBPR's "
                           f"content block would overwrite the last; use none, concat, early or gated with vbpr")
        width = cls.width(cfg, ctx)  # R: the rows the user encoder and the scorer use
        c = opts.content_dim or width // 2
        if not 1 <= c < width:
            raise MrsError(f"config key 'model.options.vbpr.content_dim' must leave an ID block: 1 <= c < "
                           f"model.dim={width}, got {c}")
        if not ctx.features:
            raise MrsError("model.encoder='vbpr' needs item features (none were given: set data.features)")
        return cls(torch.cat(list(ctx.features.values()), dim=1), c, opts.reg_weight)

    @classmethod
    def reads_user_rows(cls, cfg) -> bool:
        return False  # item outputs are the item ego rows and content

    @property
    def needs_negatives(self) -> bool:  # EmbLoss reads the negatives' rows
        return self.reg_weight > 0

    def forward(self, user_ego: Tensor, item_ego: Tensor) -> tuple[Tensor, Tensor]:
        c = self.proj.out_features
        return user_ego, torch.cat([item_ego[:, :item_ego.shape[1] - c], self.proj(self.content)], dim=1)

    def aux_losses(self, batch: Batch, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """MMRec's ``reg_weight · EmbLoss(u, i+, i-)``: non-squared Frobenius norms over the batch."""
        if self.reg_weight <= 0:
            return {}
        b = len(batch.users)
        rows = (user_emb[batch.users], item_emb[batch.pos], item_emb[batch.neg.reshape(-1)])
        return {"emb_reg": self.reg_weight * sum(torch.linalg.norm(x) for x in rows) / b}
