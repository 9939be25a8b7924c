"""One MMRec training run (enoche/MMRec's own code, unchanged), for ``run.py``.

Run with the MMRec venv's python, cwd = ``<MMRec checkout>/src`` (MMRec reads ``configs/`` from
the working directory). Mirrors ``utils/quick_start.py`` for one seed and one hyper-parameter
point (no grid, no log file), and records what quick_start only logs: each epoch's training time
(MMRec's own ``training [time: ...]`` figure: ``pre_epoch_processing`` + the batches + the lr
step) and the best-validation epoch. Prints one JSON line.

Compatibility shims restoring what MMRec's pinned versions had (requirements.txt:
scipy 1.7.3, numpy 1.21.5), nothing else patched: ``scipy.sparse.dok_matrix._update`` (removed
in scipy 1.12; LightGCN, FREEDOM, BM3 build their graph with it) as ``self._dict.update``, and
``numpy.float`` (the alias of the builtin ``float`` that MMRec's NDCG and MAP use, removed in
numpy 1.24) as ``float``. And, on a machine without CUDA only, ``Tensor.cuda`` returns the tensor
itself: MMRec's LATTICE moves its frozen graphs with an unconditional ``.cuda()`` (the rest of
MMRec honours ``use_gpu``), so without it LATTICE cannot run on a CPU at all. Where
``torch_scatter`` is not installed (PyPI has no wheel of it, only an sdist that compiles against
torch), a stand-in module with its ``scatter_add`` alone, the one name MMRec's
``utils.get_sparse_laplacian`` (MGCN's kNN graph) imports, written with ``Tensor.scatter_add_``.

    python mmrec_worker.py '{"model": "LightGCN", "dataset": "hm", "seed": 0, "config": {...}}'
"""
import json
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch

if not hasattr(sp.dok_matrix, "_update"):
    sp.dok_matrix._update = lambda self, d: self._dict.update(d)
if "float" not in np.__dict__:
    np.float = float
if not torch.cuda.is_available():
    torch.Tensor.cuda = lambda self, *args, **kwargs: self


def _scatter_add(src, index, dim=-1, out=None, dim_size=None):
    """torch_scatter.scatter_add: ``out[..., index[j], ...] += src[..., j, ...]`` along ``dim``
    (a 1-D ``index`` broadcast to ``src`` as torch_scatter does), by ``Tensor.scatter_add_``."""
    dim = dim % src.dim()
    if index.dim() == 1:
        index = index.view([-1 if i == dim else 1 for i in range(src.dim())])
    index = index.expand_as(src)
    if out is None:
        size = list(src.shape)
        size[dim] = dim_size if dim_size is not None else (int(index.max()) + 1 if index.numel() else 0)
        out = src.new_zeros(size)
    return out.scatter_add_(dim, index, src)


try:
    import torch_scatter  # noqa: F401
except ImportError:  # MMRec's utils.get_sparse_laplacian (MGCN's kNN graph) imports its scatter_add only
    import types

    sys.modules["torch_scatter"] = types.SimpleNamespace(scatter_add=_scatter_add)

sys.path.insert(0, os.getcwd())
from utils.configurator import Config  # noqa: E402  (MMRec's modules, from cwd)
from utils.dataloader import EvalDataLoader, TrainDataLoader  # noqa: E402
from utils.dataset import RecDataset  # noqa: E402
from utils.utils import get_model, get_trainer, init_seed  # noqa: E402
import common.trainer as mmrec_trainer  # noqa: E402


def main() -> None:
    job = json.loads(sys.argv[1])
    torch.set_num_threads(int(job.get("threads", 1)))
    config = Config(job["model"], job["dataset"], dict(job["config"]))
    config["seed"] = job["seed"]
    t0 = time.time()
    dataset = RecDataset(config)
    train_dataset, valid_dataset, test_dataset = dataset.split()
    for d in (dataset, train_dataset, valid_dataset, test_dataset):
        str(d)  # quick_start logs these; RecDataset.__str__ sets inter_num, which the loaders read
    train_data = TrainDataLoader(config, train_dataset, batch_size=config["train_batch_size"], shuffle=True)
    valid_data = EvalDataLoader(config, valid_dataset, additional_dataset=train_dataset,
                                batch_size=config["eval_batch_size"])
    test_data = EvalDataLoader(config, test_dataset, additional_dataset=train_dataset,
                               batch_size=config["eval_batch_size"])
    init_seed(config["seed"])
    train_data.pretrain_setup()
    model = get_model(config["model"])(config, train_data).to(config["device"])
    trainer = get_trainer()(config, model)
    setup_s = time.time() - t0

    epoch_s, valid, updates = [], [], []
    gen = trainer._generate_train_loss_output

    def timed(epoch_idx, s_time, e_time, losses):  # MMRec's own start/end of an epoch's training
        epoch_s.append(e_time - s_time)
        return gen(epoch_idx, s_time, e_time, losses)

    stop = mmrec_trainer.early_stopping

    def recorded(value, best, cur_step, max_step, bigger=True):
        out = stop(value, best, cur_step, max_step, bigger)
        valid.append(float(value))
        updates.append(bool(out[3]))
        return out

    trainer._generate_train_loss_output = timed
    mmrec_trainer.early_stopping = recorded
    best_valid, best_valid_result, best_test = trainer.fit(train_data, valid_data=valid_data,
                                                           test_data=test_data, saved=False, verbose=False)
    # one entry per evaluation, every eval_step epochs: the epoch of the last improvement
    best_epoch = max(((i + 1) * trainer.eval_step for i, u in enumerate(updates) if u), default=0)
    print(json.dumps({"side": "mmrec", "epoch_s": epoch_s, "valid_curve": valid, "best_epoch": best_epoch,
                      "epochs_run": len(epoch_s), "setup_s": setup_s,
                      "valid": {k: float(v) for k, v in best_valid_result.items()},
                      "test": {k: float(v) for k, v in best_test.items()},
                      "n_users": int(train_data.dataset.user_num), "n_items": int(train_data.dataset.item_num),
                      "torch": torch.__version__, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
