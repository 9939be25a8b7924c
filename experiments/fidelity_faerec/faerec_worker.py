"""One run of FAERec's own ``main.py`` (unchanged) for ``run.py``, with epoch times and metrics kept.

Runs in FAERec's venv with the working directory holding ``llm_emb/Beauty/itm_emb_np.npy`` (their
``llm_embeddings`` reads it from there). Their files are imported, never edited; three wrappers
are installed on their classes before ``main.py`` runs:

- ``Trainer.train`` (one epoch of their batches: what their ``epoch_times`` measures, which
  ``main.py`` only records up to ``--star_test``) is timed;
- ``Trainer.get_full_sort_score`` (every valid pass and the final test) keeps its answers and
  top-20 lists; the last call is the test at the best-valid checkpoint. HR@10 / NDCG@10 overall and
  on their tail items (``args.tail_items`` of ``ht_process.classify_head_and_tail``) are computed
  with their own ``recall_at_k`` / ``ndcg_k`` at full precision (they print 4 decimals);
- ``torch.set_num_threads(1)`` (their code leaves torch's default).

    python faerec_worker.py SRC_DIR OUT_JSON -- main.py arguments

Prints nothing of its own but their output; writes ``OUT_JSON``.
"""
from __future__ import annotations

import json
import runpy
import sys
import time
from pathlib import Path


def main() -> None:
    src, out, args = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), sys.argv[4:]
    import numpy as np
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(src))
    import trainers  # their module: main.py's `from trainers import SASRecTrainer` gets this one
    from utils import ndcg_k, recall_at_k

    epoch_s: list[float] = []
    evals: list[dict] = []
    train, score = trainers.Trainer.train, trainers.Trainer.get_full_sort_score

    def timed_train(self, epoch):
        t = time.perf_counter()
        try:
            return train(self, epoch)
        finally:
            epoch_s.append(time.perf_counter() - t)

    def kept_score(self, epoch, answers, pred_list, user_list):
        res = score(self, epoch, answers, pred_list, user_list)
        items = np.array([a[0] for a in answers])
        tail = np.array([i not in self.args.head_items for i in items])  # their tail_item_mask
        row = {"epoch_seen": len(epoch_s), "n": int(len(items)), "n_tail": int(tail.sum())}
        for k in (10, 20):
            row[f"hit@{k}"] = recall_at_k(answers, pred_list, k)
            row[f"ndcg@{k}"] = ndcg_k(answers, pred_list, k)
            row[f"tail_hit@{k}"] = recall_at_k(answers[tail], pred_list[tail], k)
            row[f"tail_ndcg@{k}"] = ndcg_k(answers[tail], pred_list[tail], k)
        evals.append(row)
        return res

    trainers.Trainer.train, trainers.Trainer.get_full_sort_score = timed_train, kept_score
    t0 = time.time()
    sys.argv = [str(src / "main.py"), *args]
    runpy.run_path(str(src / "main.py"), run_name="__main__")
    valid, test = evals[:-1], evals[-1]
    best = max(range(len(valid)), key=lambda i: (valid[i]["ndcg@20"], -i)) if valid else None
    out.write_text(json.dumps({
        "side": "faerec", "epoch_s": epoch_s, "epochs_run": len(epoch_s),
        "valid_curve": [v["ndcg@20"] for v in valid], "best_epoch": best,
        "total_s": time.time() - t0, "test": test}) + "\n")


if __name__ == "__main__":
    main()
