"""Run inside the isolated RecBole venv by bench_sequential.py (never imported by mrs): RecBole
1.2.1's own SASRec model and dataloader on the same Beauty sequences, timing N training batches
(its batches are RecBole's: one prefix -> next item per row) and printing one JSON line.

    <venv>/bin/python recbole_sasrec_worker.py WORKDIR N_BATCHES THREADS
WORKDIR holds beauty/beauty.inter (atomic file, written by bench_sequential.py)."""
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
torch.set_num_threads(threads)
cfg = {"data_path": work, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
       "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 50,
       "hidden_size": 64, "inner_size": 64, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": 0.5,
       "attn_dropout_prob": 0.5, "loss_type": "CE", "train_neg_sample_args": None, "train_batch_size": 256,
       "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
       "metrics": ["NDCG"], "topk": [10], "valid_metric": "NDCG@10", "device": "cpu", "use_gpu": False,
       "show_progress": False, "seed": 0, "reproducibility": True, "checkpoint_dir": work, "learning_rate": 0.001}
config = Config(model="SASRec", dataset="beauty", config_dict=cfg)
init_seed(config["seed"], True)
ds = create_dataset(config)
train, valid, test = data_preparation(config, ds)
model = SASRec(config, train.dataset)
opt = torch.optim.Adam(model.parameters(), lr=0.001)
model.train()
n, t0 = 0, time.perf_counter()
for inter in train:
    loss = model.calculate_loss(inter)
    opt.zero_grad()
    loss.backward()
    opt.step()
    n += 1
    if n_batches and n >= n_batches:
        break
dt = time.perf_counter() - t0
print(json.dumps({"per_batch": dt / n, "batches": len(train), "epoch": dt / n * len(train),
                  "rows_per_batch": 256}))
