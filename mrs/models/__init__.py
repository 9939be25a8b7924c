"""Models: fusion (phase 2), encoders (phase 3), the CP scorer, built by ``build_model``."""
from mrs.models.base import Batch, Recommender
from mrs.models.config import ModelConfig, build_model
from mrs.models.model import CPRecommender

__all__ = ["Batch", "Recommender", "ModelConfig", "build_model", "CPRecommender"]
