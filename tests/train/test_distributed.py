"""torchrun with 2 gloo processes on CPU: the same parameters as one process with the same global
batch and seed after 3 steps, a resumed DDP run equal to an uninterrupted one, rank-0-only output.
Also the sharding arithmetic, in-process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mrs.train.distributed import Dist

from .conftest import tiny_overrides

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def test_shards_cover_the_global_batch_and_weights_sum_to_one():
    for n, world in ((402, 2), (7, 3), (2, 4)):
        shards = [Dist(rank=r, world_size=world).shard(n) for r in range(world)]
        assert shards[0].start == 0 and shards[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))
        sizes = [s.stop - s.start for s in shards]
        assert max(sizes) - min(sizes) <= 1
        w = sum(Dist(rank=r, world_size=world).loss_weight(sz, n) for r, sz in enumerate(sizes))
        assert w == pytest.approx(1.0)
    one = Dist()
    assert one.shard(10) == slice(0, 10) and one.loss_weight(3, 10) == 1.0 and not one.enabled


def _weights(run: Path) -> dict:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=False)["model"]


def _assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=0), (k, (a[k] - b[k]).abs().max())


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_two_gloo_ranks_equal_one_process_and_resume(tiny_data, tmp_path):
    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    n_train = 1204   # train rows of tiny_data: batch 402 -> 3 steps per epoch
    sets = tiny_overrides(tiny_data, model__encoder="lightgcn", train__batch_size=402,
                          model__dim=8)
    sets = [s for s in sets if not s.startswith("train.epochs=")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(tmp_path / "ddp"), "--sparse-mf", "--shard-refit", "--"] + [a for s in sets for a in ("--set", s)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    # rank 0 alone logs: one start line per run (2 runs), naming the world size and the backend
    assert log.count("distributed: world_size=2 backend=gloo") == 4, log[-3000:]
    import re
    assert len(re.findall(r"best epoch \d+; test:", log)) == 4  # every run finished and was tested
    sent = re.findall(r"(\d+) tensors sent as touched rows", log)
    assert sent and int(sent[-1]) > 0, log[-2000:]   # the sparse path ran

    single = {}
    for epochs in (1, 2):
        cfg = load_train_config(None, sets + [f"train.epochs={epochs}"])
        single[epochs] = run_train(cfg, tmp_path / f"one{epochs}")
        from mrs.data import load_prepared
        assert len(load_prepared(tiny_data).split("train")) == n_train
    # 3 steps of global batch 402, split 201 + 201 over two ranks == one process, batch 402
    _assert_close(_weights(tmp_path / "ddp" / "e1"), _weights(tmp_path / "one1"))
    # 1 epoch, killed, --resume to 2 epochs == 2 epochs uninterrupted
    _assert_close(_weights(tmp_path / "ddp" / "resumed"), _weights(tmp_path / "one2"))
    # MF with row-sparse gradient sync (touched rows all-gathered) == one process, dense
    cfg = load_train_config(None, sets + ["train.epochs=1", "model.encoder=mf", "train.batch_size=40",
                                          "model.dim=32"])
    run_train(cfg, tmp_path / "one_mf")
    _assert_close(_weights(tmp_path / "ddp" / "mf_sparse"), _weights(tmp_path / "one_mf"))
    # evaluation sharded over the ranks and gathered: the same metrics as one process
    import json
    ddp = json.loads((tmp_path / "ddp" / "resumed" / "metrics.json").read_text())
    for split in ("valid", "test"):
        for s, vals in single[2][split].items():
            for k, v in vals.items():
                assert ddp[split][s][k] == pytest.approx(v, abs=1e-9) if v is not None else ddp[split][s][k] is None
    _check_shard_refit(sets, tmp_path)



def _check_shard_refit(sets: list[str], tmp_path: Path) -> None:
    """Issue 19: a rank with an empty shard (global batch 1203 on 1204 rows: the second batch is
    one row) joins the all-reduce instead of crashing; the train + valid refit runs distributed
    once (its gradient all-reduces counted, its weights those of one process, rank 0 alone
    writes final.pt and per_query.parquet); FREEDOM + early fusion + coupling log every term."""
    import json

    from mrs.train.config import load_train_config
    from mrs.train.trainer import run_train

    from .ddp_worker import SHARD_REFIT

    extra = [SHARD_REFIT[i + 1] for i in range(0, len(SHARD_REFIT), 2)]
    run_train(load_train_config(None, sets + ["train.epochs=1"] + extra), tmp_path / "one_refit")
    ddp = tmp_path / "ddp" / "shard_refit"
    m = json.loads((ddp / "metrics.json").read_text())
    assert m["refit"] == {"epochs": 1, "world_size": 2, "synced_steps": 2}, m["refit"]
    assert {"bpr", "l2", "coupling", "modality_bpr"} <= set(m["history"][0])
    _assert_close(_weights(ddp), _weights(tmp_path / "one_refit"))
    for name in ("final.pt", "best.pt"):
        a = torch.load(ddp / name, map_location="cpu", weights_only=True)["model"]
        b = torch.load(tmp_path / "one_refit" / name, map_location="cpu", weights_only=True)["model"]
        _assert_close(a, b)
    one = json.loads((tmp_path / "one_refit" / "metrics.json").read_text())
    assert one["refit"] == {"epochs": 1, "world_size": 1, "synced_steps": 0}
    assert m["test"]["all"]["recall@20"] == pytest.approx(one["test"]["all"]["recall@20"], abs=1e-6)
