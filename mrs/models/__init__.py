"""Models: fusion (phase 2), encoders (phase 3), user encoders and the CP scorer, each a plug-in
in a registry (:mod:`mrs.models.base`), built by ``build_model``."""
from mrs.models.base import (ENCODERS, FUSIONS, SCORERS, USERS, Batch, BuildContext, Encoder, Fusion,
                             Recommender, Scorer, UserEncoder)
from mrs.models.config import ModelConfig, build_artifacts, build_context, build_model
from mrs.models.model import CPRecommender

__all__ = ["Batch", "BuildContext", "Recommender", "Encoder", "Fusion", "UserEncoder", "Scorer",
           "ENCODERS", "FUSIONS", "USERS", "SCORERS", "ModelConfig", "build_context", "build_artifacts",
           "build_model", "CPRecommender"]
