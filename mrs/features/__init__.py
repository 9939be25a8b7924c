"""Phase 1: pre-extracted text and image features in HDF5 / LMDB stores.

Later phases read features only through ``load_features`` (aligned with the prepared item index).
Extraction (``extract_text`` / ``extract_image``) and ``merge_shards`` import torch lazily.
"""
from mrs.features.reader import list_features, load_features, resolve_store
from mrs.features.store import LmdbFeatures, open_writer, read_meta, read_store, write_store

__all__ = ["load_features", "list_features", "resolve_store", "read_store", "read_meta",
           "write_store", "open_writer", "LmdbFeatures"]
