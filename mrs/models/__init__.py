"""Models: fusion (phase 2), encoders (phase 3), user encoders and the CP scorer, each a plug-in
in a registry (:mod:`mrs.models.base`), built by ``build_model``; closed-form baselines
(:mod:`mrs.models.closed`) in ``CLOSED_FORM``."""
from mrs.models.base import (CLOSED_FORM, ENCODERS, FUSIONS, SCORERS, USERS, Batch, BuildContext, Encoder, Fusion,
                             Recommender, Scorer, UserEncoder)
from mrs.models.config import ModelConfig, build_artifacts, build_context, build_model
from mrs.models.model import CPRecommender

__all__ = ["Batch", "BuildContext", "Recommender", "Encoder", "Fusion", "UserEncoder", "Scorer",
           "ENCODERS", "FUSIONS", "CLOSED_FORM", "USERS", "SCORERS", "ModelConfig", "build_context", "build_artifacts",
           "build_model", "CPRecommender"]
