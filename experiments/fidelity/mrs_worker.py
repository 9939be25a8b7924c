"""One ``mrs train`` run for ``run.py``, with each epoch's training time recorded.

``mrs train`` itself, unchanged, except that ``Trainer.train_epoch`` (``on_epoch_start`` + the
batches: what MMRec's ``training [time: ...]`` covers; not the validation pass or the checkpoint
write that ``metrics.json``'s ``time_s`` also holds) is wrapped in a timer. Prints one JSON line.

    python mrs_worker.py OUT_RUN_DIR -- mrs train arguments (--config/--set ...)

Diagnostic only (``FID_TRAIN_NEGATIVES=1``, not used by ``run.py``): negatives drawn as MMRec
draws them, uniform over the non-train items *that occur in train* (MMRec's
``TrainDataLoader._random`` samples from ``all_items``, the train split's items), by rejecting
mrs's uniform draws that fall on items without train rows.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mrs.cli import main as mrs_main
from mrs.train.trainer import Trainer


def train_item_negatives() -> None:
    import torch

    from mrs.sampling import NegativeSampler

    init, uniform = NegativeSampler.__init__, NegativeSampler.uniform

    def patched_init(self, train_users, train_items, n_items, *args, **kwargs):
        init(self, train_users, train_items, n_items, *args, **kwargs)
        self.fid_warm = torch.zeros(n_items, dtype=torch.bool)
        self.fid_warm[torch.as_tensor(train_items).long()] = True

    def patched_uniform(self, users, m=1):
        neg = uniform(self, users, m)
        for _ in range(1000):  # rejection: uniform over the user's non-train items that are train items
            cold = ~self.fid_warm[neg]
            if not bool(cold.any()):
                break
            neg[cold] = uniform(self, users, m)[cold]
        return neg

    NegativeSampler.__init__, NegativeSampler.uniform = patched_init, patched_uniform


def main() -> None:
    import os

    if os.environ.get("FID_TRAIN_NEGATIVES"):
        train_item_negatives()
    out, args = Path(sys.argv[1]), sys.argv[3:]
    epoch_s: list[float] = []
    inner = Trainer.train_epoch

    def timed(self, epoch):
        t = time.perf_counter()
        try:
            return inner(self, epoch)
        finally:
            if self.triples is not None and self.model.trains_by_gradient:
                epoch_s.append(time.perf_counter() - t)

    Trainer.train_epoch = timed
    t0 = time.time()
    rc = mrs_main(["train", *args, "--out", str(out), "--no-wandb"])
    if rc:
        raise SystemExit(rc)
    m = json.loads((out / "metrics.json").read_text())
    hist = m["history"]
    key = f"valid/{m['select_metric']}"
    print(json.dumps({"side": "mrs", "epoch_s": epoch_s, "valid_curve": [h[key] for h in hist if key in h],
                      "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
                      "total_s": time.time() - t0,
                      "valid": m["valid"]["all"], "test": m["test"]["all"]}))


if __name__ == "__main__":
    main()
