from mrs.tracking.base import NullLogger, RunLogger

__all__ = ["NullLogger", "RunLogger"]
