"""``TrainConfig``: everything one ``mrs train`` run needs, as nested dataclasses (nanoGPT style).

A YAML file and ``--set key=value`` overrides sit on top of these defaults; unknown keys are an
error naming the dotted key (``mrs.config``). The run directory keeps the full resolved config
as ``config.yaml``, so every ``metrics.json`` can be traced back to exactly what produced it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from mrs.config import load_config
from mrs.errors import MrsError
from mrs.eval import EvalConfig
from mrs.models.config import ModelConfig


@dataclass
class DataConfig:
    dir: str = ""                    # prepared dataset directory (`mrs prepare ...` / `mrs synth`)
    features: list[str] = field(default_factory=list)  # feature stores to load, e.g. [text-minilm, image-effnet]
    fill: Literal["mean", "zeros"] = "mean"  # rows missing from a store: mean vector (MMRec, LATTICE) or zeros
    cache_dir: str = "auto"          # cached model inputs (kNN graph): a path, "none", or auto = <dir>/cache if writable


@dataclass
class OptimConfig:
    epochs: int = 100                # upper bound; early stopping usually ends sooner
    batch_size: int = 2048           # BPR triples per step
    lr: float = 1e-3                 # Adam learning rate (L2 weight is model.reg)
    negatives: Literal["uniform", "dynamic"] = "uniform"  # dynamic = hard negatives scored by the model
    n_candidates: int = 16           # M: candidates drawn per positive for dynamic negatives
    hard: Literal["hardest", "softmax"] = "hardest"  # keep the top-scored candidate, or sample by softmax
    temperature: float = 1.0         # softmax temperature for hard="softmax"
    seed: int = 2024                 # seeds torch, numpy, python and the data order
    patience: int = 10               # evaluations without improvement before stopping (0 = never stop early)
    eval_every: int = 1              # validate every N epochs
    select_metric: str = "recall@20"  # validation metric (slice "all") that picks the best epoch
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available
    num_threads: int = 0             # torch CPU threads; 0 keeps torch's default
    malloc: Literal["mmap", "heap"] = "mmap"  # glibc: heap = never mmap large blocks, reuse them (big graphs; bench_malloc.py)
    final_fit: Literal["auto", "train", "train+valid"] = "auto"  # model the test split is read with: refit on train+valid for the best epoch count (auto: on temporal splits)
    sparse_grads: bool = False       # torchrun: sum embedding gradients as touched rows (MF) when smaller than dense


@dataclass
class WandbConfig:
    enabled: bool = True             # offline unless logged in; `--no-wandb` forces false
    project: str = "mrs"
    name: str | None = None          # run name; default = the run directory's name
    group: str | None = None         # e.g. the compare/sweep directory
    tags: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def __post_init__(self) -> None:
        """Values that would crash mid-run (batch_size 0) or train nonsense silently (a negative
        lr or reg) are refused when the config is built: before any run directory exists, and
        before the first trial of a sweep."""
        import math
        from operator import attrgetter

        t, m = self.train, self.model
        checks = [("train.epochs", t.epochs >= 1, ">= 1"), ("train.batch_size", t.batch_size >= 1, ">= 1"),
                  ("train.lr", math.isfinite(t.lr) and t.lr > 0, "a positive number"),
                  ("train.n_candidates", t.n_candidates >= 1, ">= 1"),
                  ("train.temperature", t.temperature > 0, "> 0"), ("train.patience", t.patience >= 0, ">= 0"),
                  ("train.eval_every", t.eval_every >= 1, ">= 1"), ("train.num_threads", t.num_threads >= 0, ">= 0"),
                  ("model.reg", math.isfinite(m.reg) and m.reg >= 0, ">= 0"),
                  ("model.coupling_mu0", m.coupling_mu0 >= 0, ">= 0")]
        for key, ok, want in checks:
            if not ok:
                raise MrsError(f"config key {key!r} must be {want}, got {attrgetter(key)(self)!r}")
        from mrs.train.closed_form import check_config

        check_config(self)  # a closed-form model.encoder refuses gradient-only options


def load_train_config(path: str | Path | None = None, overrides: Iterable[str] = (),
                      base: dict | None = None) -> TrainConfig:
    """Defaults <- ``base`` <- YAML ``path`` <- ``key=value`` overrides."""
    return load_config(TrainConfig, path, overrides, base=base)
