"""Run inside the isolated RecBole venv by bench_sequential.py (never imported by mrs): RecBole
1.2.1's own SASRec model and dataloader on the same Beauty sequences, printing one JSON line.

    <venv>/bin/python recbole_sasrec_worker.py WORKDIR N_BATCHES THREADS [EPOCHS LR]

N_BATCHES > 0: time the first N training batches (its batches are RecBole's: one prefix -> next
item per row). EPOCHS > 0 (N_BATCHES 0): train that many whole epochs at Adam LR, then RecBole's
own full-sort evaluation of the valid split (train items masked), NDCG@10; the training seconds
exclude the evaluation. WORKDIR holds beauty/beauty.inter (written by bench_sequential.py)."""
import json
import sys
import time

import numpy as np
import torch

# RecBole 1.2.1 still uses aliases NumPy 2 removed; the shared torch build needs NumPy 2, so the
# aliases are restored here (this process only) rather than pinning an older NumPy.
for _old, _new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
    if not hasattr(np, _old):
        setattr(np, _old, _new)

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

work, n_batches, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 0
lr = float(sys.argv[5]) if len(sys.argv) > 5 else 0.001
torch.set_num_threads(threads)
cfg = {"data_path": work, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
       "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 50,
       "hidden_size": 64, "inner_size": 64, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": 0.5,
       "attn_dropout_prob": 0.5, "loss_type": "CE", "train_neg_sample_args": None, "train_batch_size": 256,
       "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
       "metrics": ["NDCG"], "topk": [10], "valid_metric": "NDCG@10", "device": "cpu", "use_gpu": False,
       "show_progress": False, "seed": 0, "reproducibility": True, "checkpoint_dir": work, "learning_rate": lr}
config = Config(model="SASRec", dataset="beauty", config_dict=cfg)
init_seed(config["seed"], True)
ds = create_dataset(config)
train, valid, test = data_preparation(config, ds)
model = SASRec(config, train.dataset)
opt = torch.optim.Adam(model.parameters(), lr=lr)


def train_pass(limit: int = 0) -> tuple[float, int]:
    """One pass over RecBole's train loader (the first ``limit`` batches if > 0): (seconds, batches)."""
    model.train()
    n, t0 = 0, time.perf_counter()
    for inter in train:
        loss = model.calculate_loss(inter)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
        if limit and n >= limit:
            break
    return time.perf_counter() - t0, n


if epochs:
    from recbole.trainer import Trainer

    train_s = sum(train_pass()[0] for _ in range(epochs))
    t0 = time.perf_counter()
    res = Trainer(config, model).evaluate(valid, load_best_model=False, show_progress=False)
    print(json.dumps({"train_s": train_s, "epochs": epochs, "batches": len(train), "epoch": train_s / epochs,
                      "eval": time.perf_counter() - t0, "ndcg@10": float(res["ndcg@10"])}))
    sys.exit(0)
dt, n = train_pass(n_batches)
print(json.dumps({"per_batch": dt / n, "batches": len(train), "epoch": dt / n * len(train),
                  "rows_per_batch": 256}))
