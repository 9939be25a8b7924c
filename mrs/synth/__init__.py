"""Planted-structure synthetic data: raw H&M / Amazon 2023 files (``mrs synth``) and small
prepared datasets for tests (``make_prepared``). See ``mrs.synth.planted`` for the model."""
from mrs.synth.planted import Planted, SynthConfig, plant, sample, sample_all
from mrs.synth.truth import load_planted, save_planted
from mrs.synth.prepared import make_prepared

__all__ = ["SynthConfig", "Planted", "plant", "sample", "sample_all", "save_planted", "load_planted",
           "make_prepared"]
