"""Closed-form models (``model.encoder`` in :data:`mrs.models.base.CLOSED_FORM`) in the trainer.

The trainer asks ``model.trains_by_gradient``; when it is false:

- the run has one "epoch", and that epoch is :func:`fit_once`: the model is fitted on the
  trainer's dataset's train split (in the final fit's train+valid view, on train + valid); no
  optimizer, sampler or batches. The history row holds ``fit_s``, the fit's seconds;
- validation, the best-epoch bookkeeping (epoch 1), the final fit (``train.final_fit``), test
  once, slices, both query kinds, ``per_query.parquet``, ``metrics.json``, W&B, ``mrs compare``
  and ``mrs sweep`` are the gradient models' code, unchanged;
- ``best.pt`` / ``last.pt`` hold no fitted matrices (EASE's is I² floats): every path that builds
  a trainer and evaluates (a resumed run, a sweep's test read, ``mrs export``) fits again, which
  is deterministic.

Options that only mean something for gradient training are refused when the config is built
(:func:`check_config`), with a one-line error naming the key.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mrs.errors import MrsError

if TYPE_CHECKING:
    from mrs.train.config import TrainConfig

log = logging.getLogger(__name__)


def is_closed_form(encoder: str) -> bool:
    from mrs.models.base import CLOSED_FORM

    return encoder in CLOSED_FORM


def check_config(cfg: "TrainConfig") -> None:
    """Refuse gradient-only options on a closed-form ``model.encoder``."""
    m, t = cfg.model, cfg.train
    if not is_closed_form(m.encoder):
        return
    bad = [("model.fusion", m.fusion, m.fusion != "none"),
           ("model.user_encoder", m.user_encoder, m.user_encoder != "id"),
           ("model.coupling_mu0", m.coupling_mu0, m.coupling_mu0 > 0),
           ("model.loss", m.loss, m.loss != "auto"),
           ("train.negatives", t.negatives, t.negatives != "uniform"),
           ("train.sparse_grads", t.sparse_grads, t.sparse_grads)]
    for key, value, wrong in bad:
        if wrong:
            raise MrsError(f"config key {key!r}: {value!r} is a gradient-training option; "
                           f"model.encoder={m.encoder!r} is fitted in closed form (leave the key at "
                           f"its default)")


def check_export(cfg: "TrainConfig") -> None:
    """``mrs export`` of a closed-form run: only a model whose scores are a user-item factor
    product is served (global ``pop``: ones · counts); others are refused in one line, before
    any fit."""
    from mrs.models.base import CLOSED_FORM

    if is_closed_form(cfg.model.encoder) and not CLOSED_FORM.get(cfg.model.encoder).exportable(cfg.model):
        raise MrsError(f"config key 'model.encoder': mrs export serves factor models and the closed-form "
                       f"'pop' without 'by' / 'repeat'; {cfg.model.encoder!r} (as configured) is no "
                       f"user-item factor product, so this run cannot be exported")


def prepare(tr: Any) -> None:
    """At build time: the rows to fit on, checked against the model's options (pop's ``by``
    naming a missing mode fails here, before any run directory exists)."""
    from mrs.models.closed.base import Interactions

    tr.fit_data = Interactions.from_dataset(tr.ds, "train")
    tr.model.check_data(tr.fit_data)


def fit_once(tr: Any) -> dict[str, float]:
    """Fit ``tr.model`` on ``tr.fit_data`` unless it is fitted; ``{"fit_s": seconds}``. BLAS
    threads follow ``train.num_threads`` (scipy's BLAS does not read torch's setting)."""
    model = tr.model
    if not model.fitted:
        from threadpoolctl import threadpool_limits

        n = tr.cfg.train.num_threads or None
        with threadpool_limits(limits=n):
            model.fit(tr.fit_data)
        log.info("%s: fitted in closed form in %.1f s", model.plugin_name, model.fit_seconds)
    return {"fit_s": model.fit_seconds}
