"""Hyper-parameter sweeps in W&B's YAML format: ``mrs sweep FILE`` / ``run_sweep``."""
from mrs.sweep.runner import Sweep, run_sweep
from mrs.sweep.spec import SweepSpec, load_spec

__all__ = ["Sweep", "run_sweep", "SweepSpec", "load_spec"]
