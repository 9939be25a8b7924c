from mrs.data.prepared import PreparedDataset, load_prepared, write_prepared, SPLITS

__all__ = ["PreparedDataset", "load_prepared", "write_prepared", "SPLITS"]
