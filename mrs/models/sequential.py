r"""Sequential user encoders: a transformer over the user's last ``L`` items gives the user state
that takes the static user row's place in the CP query (the seed paper's *Hybrid*):

.. math::
    \hat{y}(u, i, c, t) = \sum_r s_u[r]\, Q[i, r]\, C[c, r]\, T[t, r], \qquad
    s_u = f_\theta\big(Q[i_{L}], \dots, Q[i_1]\big)

The tokens are the model's *item output* ``Q = encoder(user_ego, fusion(ids, content))``, so the
sequence reads IDs, fused content (concat / early / gated) or a graph encoder's item rows, and
the same rows are the output embedding (weight tying, as SASRec). The target interaction's mode
rows still multiply the state, so context and time stay explicit tensor modes.

- ``sasrec`` (Kang & McAuley, 2018): causal self-attention, learned positions, next-item
  prediction at every position.
- ``bert4rec`` (Sun et al., 2019): bidirectional, cloze training (a share of positions replaced
  by a learned [MASK] token, their items predicted); a query appends [MASK] after the history.

Both use ``nn.TransformerEncoder`` (PyTorch's fused attention), post-norm as RecBole's SASRec:
``x = Dropout(LayerNorm(√R · Q[seq] + P))``. Sequences are left-padded with ``n_items`` (a zero
token); padded keys are masked, except that every position may attend to itself, so a user with
no history gets a defined "no history" state, trained to predict users' first train items
(:meth:`SequentialUserEncoder.train_predictions`; such users are counted by the trainer).
The ID user table is kept only as the graph encoders' user ego rows (LightGCN propagates it).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mrs.errors import MrsError
from mrs.models.base import FUSIONS, USERS, BuildContext, SequenceEmbedder, UserEncoder
from mrs.models.objective import Predictions


class SequentialUserEncoder(UserEncoder):
    """Shared body of ``sasrec`` / ``bert4rec``; ``causal`` selects the attention pattern."""

    sequential = True
    causal = True
    default_loss = "ce"  # the full softmax: the strong SASRec baseline

    def __init__(self, n_users: int, n_items: int, dim: int, seq_len: int, blocks: int = 2,
                 heads: int = 2, dropout: float = 0.2, user_rows: bool = True, own_inputs: bool = True):
        super().__init__()
        self.n_items, self.seq_len, self.heads, self.dim = n_items, seq_len, heads, dim
        self.emb = nn.Embedding(n_users, dim)  # (U, R) ego rows for graph encoders only
        nn.init.xavier_uniform_(self.emb.weight)
        # An encoder whose item rows do not read user rows (mf) leaves them unused: frozen, so
        # no parameter is silently untrained (they stay in the state dict for old checkpoints).
        self.emb.weight.requires_grad_(user_rows)
        self.pos = nn.Embedding(seq_len, dim)  # (L, R) position L-1 = the latest item
        nn.init.normal_(self.pos.weight, std=0.02)
        self.mask_token = nn.Parameter(torch.zeros(dim)) if not self.causal else None
        self.norm = nn.LayerNorm(dim)
        # A fusion that embeds the sequences itself (FAERec: gate, then its own LayerNorm) leaves
        # this input LayerNorm unused: frozen, like the unused user rows above.
        self.norm.requires_grad_(own_inputs)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout,
                                           activation="gelu", batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.register_buffer("history", torch.full((n_users, seq_len), n_items, dtype=torch.long),
                             persistent=False)

    @classmethod
    def from_config(cls, cfg, ctx: BuildContext, dim: int) -> "SequentialUserEncoder":
        if cfg.seq_len < 1:
            raise MrsError(f"config key 'model.seq_len': must be >= 1, got {cfg.seq_len}")
        if cfg.seq_heads < 1 or dim % cfg.seq_heads:
            raise MrsError(f"config key 'model.seq_heads': {cfg.seq_heads} must divide the "
                           f"embedding size {dim}")
        if cfg.seq_blocks < 1 or not 0.0 <= cfg.seq_dropout < 1.0:
            raise MrsError(f"config keys 'model.seq_blocks' >= 1 and 'model.seq_dropout' in [0, 1) "
                           f"required (got {cfg.seq_blocks}, {cfg.seq_dropout})")
        if cfg.fusion == "late":
            raise MrsError("config key 'model.fusion': 'late' scales the static user row per block "
                           "and is not supported with a sequential model.user_encoder")
        from mrs.models.base import ENCODERS

        return cls(ctx.n_users, ctx.n_items, dim, cfg.seq_len, cfg.seq_blocks, cfg.seq_heads,
                   cfg.seq_dropout, user_rows=ENCODERS.get(cfg.encoder).reads_user_rows(cfg),
                   own_inputs=not FUSIONS.get(cfg.fusion).embeds_sequences)

    def ego(self) -> Tensor:
        return self.emb.weight

    def set_history(self, history: Tensor) -> None:
        if history.shape != self.history.shape:
            raise MrsError(f"history of shape {tuple(history.shape)}, expected {tuple(self.history.shape)}")
        self.history = history.to(self.history.device)

    # ------------------------------------------------------------------ the transformer
    def tokens(self, seq: Tensor, item_emb: Tensor) -> Tensor:
        """``seq (B, L)`` ids (``n_items`` = padding) -> ``(B, L, R)`` (padding = zero row)."""
        table = torch.cat([item_emb, item_emb.new_zeros(1, item_emb.shape[1])])  # (I + 1, R)
        return table[seq]

    def positions(self, length: int) -> Tensor:
        """``(length, R)`` position rows, right-aligned: the last one is the latest item's."""
        return self.pos.weight[self.seq_len - length:]

    def states(self, tokens: Tensor, pad: Tensor) -> Tensor:
        """``tokens (B, L, R)``, ``pad (B, L)`` bool -> hidden states ``(B, L, R)``."""
        x = self.drop(self.norm(tokens * math.sqrt(self.dim) + self.positions(tokens.shape[1])))
        return self.attend(x, pad)

    def attend(self, x: Tensor, pad: Tensor) -> Tensor:
        """Input rows ``x (B, L, R)``, ``pad (B, L)`` bool -> hidden states ``(B, L, R)``."""
        B, L, _ = x.shape
        blocked = pad[:, None, :].expand(B, L, L)  # (B, L_query, L_key): no attention to padding
        if self.causal:
            blocked = blocked | torch.ones(L, L, dtype=torch.bool, device=pad.device).triu(1)
        blocked = blocked & ~torch.eye(L, dtype=torch.bool, device=pad.device)  # always see itself
        mask = blocked.repeat_interleave(self.heads, dim=0)  # (B · heads, L, L)
        return self.blocks(x, mask=mask)

    def query_seq(self, hist: Tensor) -> Tensor:
        """The sequence a query reads, ``(B, L)``: the history itself (SASRec)."""
        return hist

    def query_rows(self, users: Tensor, user_emb: Tensor, item_emb: Tensor,
                   embed: SequenceEmbedder | None = None) -> Tensor:
        """``(B, R)``: the state after each user's history (the last position)."""
        return self.history_rows(self.history[users], item_emb, embed)

    def history_rows(self, hist: Tensor, item_emb: Tensor, embed: SequenceEmbedder | None = None) -> Tensor:
        """``(B, R)``: the state after each history ``hist (B, L)``, left-padded with
        ``len(item_emb)`` (= ``n_items`` in training; a server's token table may hold more rows)."""
        width = max(1, int((hist != item_emb.shape[0]).sum(1).max()))  # trim all-padding columns
        seq = self.query_seq(hist[:, -width:] if self.causal else hist[:, -width - 1:])
        return self.encode_seq(seq, item_emb, embed=embed)[:, -1]

    def empty_state(self, item_emb: Tensor, embed: SequenceEmbedder | None = None) -> Tensor:
        """``(1, R)``: the state of a user with no history (what such a query reads)."""
        pad = item_emb.new_full((1, self.seq_len), item_emb.shape[0], dtype=torch.long)
        return self.history_rows(pad, item_emb, embed)

    def train_predictions(self, batch: tuple[Tensor, ...], item_emb: Tensor, scorer,
                          generator: torch.Generator, mask_prob: float = 0.2,
                          embed: SequenceEmbedder | None = None) -> Predictions:
        """The predictions of a batch of training sequences (:class:`mrs.train.sequences.SeqTrain`
        rows): next item at every position (sasrec), or the masked items (bert4rec, a share
        ``mask_prob`` of the real positions, at least one per row, drawn from ``generator``);
        plus, per row, the no-history state predicting the user's first train item, so the
        state a user without history is queried with is trained too. ``embed``: the fusion's
        sequence embedding, where it has one (:meth:`encode_seq`)."""
        users, inputs, targets, modes, items, first, first_modes = batch
        if self.causal:
            states = self.encode_seq(inputs, item_emb, embed=embed)           # (B, L, R)
            tgt_full = targets
        else:  # cloze: mask a share of the real positions (at least one per row), predict them
            real = items != self.n_items
            masked = (torch.rand(items.shape, generator=generator).to(items.device) < mask_prob) & real
            last = real.long().cumsum(1).argmax(1)                            # the last real position
            none = ~masked.any(1)
            masked[none, last[none]] = True
            states = self.encode_seq(items, item_emb, masked=masked, embed=embed)
            tgt_full = items.masked_fill(~masked, -1)
        valid = tgt_full >= 0                                                 # (B, L)
        empty = self.empty_state(item_emb, embed).expand(len(users), -1)     # (B, R)
        rows = torch.cat([states[valid], empty])                              # (N, R)
        m = torch.cat([modes[valid], first_modes])
        read = torch.cat([inputs[valid], torch.full_like(users, self.n_items)]) if self.causal else None
        return Predictions(users=torch.cat([users[:, None].expand_as(valid)[valid], users]),
                           queries=scorer.query(rows, m), pos=torch.cat([tgt_full[valid], first]), modes=m,
                           inputs=read)

    def encode_seq(self, seq: Tensor, item_emb: Tensor, masked: Tensor | None = None,
                   embed: SequenceEmbedder | None = None) -> Tensor:
        """States of id sequences ``(B, L)`` -> ``(B, L, R)``; ``masked (B, L)`` bool positions
        get the [MASK] token (bert4rec); id ``-2`` in ``seq`` also means [MASK]; id
        ``len(item_emb)`` is padding. ``embed``: the fusion's embedding of the sequence (FAERec's
        gate), replacing ``Dropout(LayerNorm(√R · Q[seq] + P))``; causal sequences only."""
        pad = item_emb.shape[0]
        if embed is not None:
            if not self.causal:  # never reached: FAERec refuses bert4rec at build time
                raise MrsError("config key 'model.user_encoder': a fusion that embeds the sequences "
                               "needs a causal one (sasrec), not [MASK] tokens")
            return self.attend(embed(seq, self.positions(seq.shape[1]), self.drop), seq == pad)
        is_mask = seq == -2 if masked is None else masked | (seq == -2)
        tok = self.tokens(seq.clamp(min=0).masked_fill(is_mask, pad), item_emb)
        if self.mask_token is not None:
            tok = torch.where(is_mask[..., None], self.mask_token.to(tok.dtype), tok)
        return self.states(tok, (seq == pad))


@USERS.register("sasrec", rank=10)
class SASRecUserEncoder(SequentialUserEncoder):
    """SASRec: causal self-attention over the last seq_len items, next-item training at every position."""

    causal = True


@USERS.register("bert4rec", rank=11)
class BERT4RecUserEncoder(SequentialUserEncoder):
    """BERT4Rec: bidirectional self-attention, cloze (masked-item) training."""

    causal = False

    def query_seq(self, hist: Tensor) -> Tensor:
        """History shifted left by one, then [MASK] (id -2) in the last position."""
        return torch.cat([hist[:, 1:], torch.full_like(hist[:, :1], -2)], dim=1)
