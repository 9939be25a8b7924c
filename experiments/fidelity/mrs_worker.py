"""One ``mrs train`` run for ``run.py``, with each epoch's training time recorded.

``mrs train`` itself, unchanged, except that ``Trainer.train_epoch`` (``on_epoch_start`` + the
batches: what MMRec's ``training [time: ...]`` covers; not the validation pass or the checkpoint
write that ``metrics.json``'s ``time_s`` also holds) is wrapped in a timer. Prints one JSON line.

    python mrs_worker.py OUT_RUN_DIR -- mrs train arguments (--config/--set ...)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mrs.cli import main as mrs_main
from mrs.train.trainer import Trainer


def main() -> None:
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
