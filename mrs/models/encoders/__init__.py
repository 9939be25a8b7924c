"""Phase-3 encoders, one module each. Every module here is imported on the first registry
lookup (``mrs.models.base.ENCODERS``), so a new encoder is one new file in this folder."""
