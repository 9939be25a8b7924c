"""Issue 19: which figures did the one-loss refactor change? Trains six small variants on one
generated dataset and prints their test/valid figures; run it on two checkouts and diff:

    git worktree add /tmp/old 651b1f6 --detach
    (cd /tmp/old && PYTHONPATH=/tmp/old python /path/to/run.py /tmp/same_old > old.txt)
    (cd CHECKOUT && PYTHONPATH=CHECKOUT python experiments/issue19_same_figures/run.py /tmp/same_new > new.txt)
    diff old.txt new.txt

Only model.* keys both versions know are set (the old code has no model.loss), so the sequential
rows use each version's default (full-softmax CE).
"""
import json, sys, logging
from mrs.synth import make_prepared
from mrs.train.config import load_train_config
from mrs.train.trainer import run_train
out = sys.argv[1]
d = make_prepared(f"{out}/ds", n_users=120, n_items=150, n_interactions=4000, seed=0, modes=True, features_dim=8)
base = [f"data.dir={d}", "model.dim=16", "model.joint_dim=16", "train.epochs=4", "train.batch_size=256", "train.lr=0.01",
        "train.device=cpu", "eval.bootstrap=0", "wandb.enabled=false", "train.num_threads=1"]
variants = {"mf+cp": ["model.encoder=mf"], "lightgcn": ["model.encoder=lightgcn", "model.modes=false"],
            "freedom+early+coupling": ["model.encoder=freedom", "model.fusion=early", "model.coupling_mu0=0.5",
                                       "data.features=[text-synth, image-synth]"],
            "lightgcn+late+dynamic": ["model.encoder=lightgcn", "model.fusion=late", "train.negatives=dynamic",
                                      "data.features=[text-synth, image-synth]"],
            "sasrec (ce, no coupling)": ["model.encoder=mf", "model.user_encoder=sasrec", "model.seq_len=8"],
            "sasrec+early+coupling": ["model.encoder=mf", "model.user_encoder=sasrec", "model.seq_len=8", "model.fusion=early",
                                      "model.coupling_mu0=0.5", "data.features=[text-synth, image-synth]"]}
for name, sets in variants.items():
    m = run_train(load_train_config(None, base + sets), f"{out}/{name.replace(' ', '_')}")
    print(f"{name:28s} test recall@20 {m['test']['all']['recall@20']:.6f} ndcg@20 {m['test']['all']['ndcg@20']:.6f} valid {m['valid']['all']['recall@20']:.6f}")
