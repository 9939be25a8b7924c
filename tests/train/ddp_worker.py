"""Run under ``torchrun --nproc_per_node 2`` by tests/train/test_distributed.py: ``mrs train``
runs through the real CLI in one launch, sharing one gloo process group (joined here once:
``mrs train`` uses a group it finds and leaves it open):

1. ``OUT/e1``: 1 epoch (3 steps);
2. ``OUT/resumed``: a copy of ``e1`` continued with ``--resume`` to 2 epochs;
3. ``OUT/e2``: 2 epochs uninterrupted (only with ``--uninterrupted``);
4. ``OUT/mf_sparse``: 1 epoch of MF with row-sparse gradient sync, batch 40 and 32-d so that
   a step touches few enough rows for the sparse path (only with ``--sparse-mf``);
5. ``OUT/shard_refit``: 1 epoch of FREEDOM + early fusion + semantic coupling at global batch
   1203 on 1204 train rows, so the last batch leaves rank 1 an empty shard, then the train +
   valid refit, distributed (only with ``--shard-refit``).

Usage: ddp_worker.py OUT [--uninterrupted] [--sparse-mf] -- --set KEY=VALUE ...
"""
import datetime
import shutil
import sys
from pathlib import Path

import torch.distributed as dist

from mrs.cli import main

SHARD_REFIT = ["--set", "model.encoder=freedom", "--set", "model.fusion=early", "--set", "model.coupling_mu0=0.5",
               "--set", "data.features=[text-synth, image-synth]", "--set", "train.batch_size=1203",
               "--set", "train.final_fit=train+valid"]

if __name__ == "__main__":
    out = Path(sys.argv[1])
    flags, sets = sys.argv[2:sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1:]
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=300))

    def train(run: str, epochs: int, *extra: str) -> None:
        rc = main(["train", *sets, "--set", f"train.epochs={epochs}", "--no-wandb",
                   "--out", str(out / run), *extra])
        if rc:
            sys.exit(rc)

    train("e1", 1)
    if dist.get_rank() == 0:   # a resumed run starts from a copy of the 1-epoch run's directory
        shutil.copytree(out / "e1", out / "resumed", ignore=shutil.ignore_patterns(".lock"))
    dist.barrier()
    train("resumed", 2, "--resume")
    if "--uninterrupted" in flags:
        train("e2", 2)
    if "--sparse-mf" in flags:
        train("mf_sparse", 1, "--set", "model.encoder=mf", "--set", "train.sparse_grads=true",
              "--set", "train.batch_size=40", "--set", "model.dim=32")
    if "--shard-refit" in flags:
        train("shard_refit", 1, *SHARD_REFIT)
    dist.destroy_process_group()
