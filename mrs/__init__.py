"""mrs: multimodal, context-aware recommendation for the long tail.

Four phases, each with a file on disk as its boundary (see README.md):
features (phase 1) -> fusion (2) -> encoder (3) -> CP tensor score + optimisation (4).
"""
__version__ = "0.1.0"
