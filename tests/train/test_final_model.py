"""One final model (issue 19): the model whose test figures a run reports is the model ``mrs
export`` serves, and ``mrs sweep``'s selected-trial test figure is ``mrs train``'s."""
from __future__ import annotations

import json

import numpy as np
import torch

from mrs.serve.export import export_run
from mrs.serve.service import RecommendService
from mrs.train.config import load_train_config
from mrs.train.trainer import Trainer, evaluate_checkpoint, run_train
from tests.train.conftest import tiny_overrides


def _cfg(tiny_data, **kw):
    return load_train_config(None, tiny_overrides(
        tiny_data, model__encoder="lightgcn", train__epochs=3, train__final_fit="train+valid",
        eval__bootstrap=0, wandb__enabled="false", **kw))


def _model(run, weights: str, refit: bool):
    from mrs.data.prepared import load_prepared
    from mrs.train.refit import train_valid_view

    cfg = load_train_config(run / "config.yaml")
    ds = load_prepared(cfg.data.dir)
    tr = Trainer.build(cfg, device=torch.device("cpu"), ds=train_valid_view(ds) if refit else ds)
    tr.model.load_state_dict(torch.load(run / weights, weights_only=True)["model"])
    return tr.model.eval()


def test_export_serves_the_refit_model_whose_test_figures_are_reported(tiny_data, tmp_path):
    run = tmp_path / "run"
    m = run_train(_cfg(tiny_data), run)
    assert m["final_fit"] == "train+valid" and m["final_weights"] == "final.pt"
    assert json.loads((run / "metrics.json").read_text())["final_weights"] == "final.pt"
    assert (run / "final.pt").is_file()
    export_run(run, tmp_path / "model")
    svc = RecommendService.open(tmp_path / "model", retrieval="exact")
    from mrs.data.prepared import load_prepared

    meta = load_prepared(tiny_data).meta["modes"]
    labels = {"context": meta["context"]["labels"][1], "time": meta["time"]["labels"][3]}
    users = torch.arange(60)
    modes = torch.tensor([[1, 3]]).repeat(len(users), 1)
    with torch.no_grad():
        final = _model(run, "final.pt", refit=True).full_sort_predict(users, modes)
        best = _model(run, "best.pt", refit=False).full_sort_predict(users, modes)
    want = torch.topk(final, 10, dim=1).indices.numpy()
    got = svc.rank(users.numpy(), svc.model.resolve_modes(labels), 10).items
    np.testing.assert_array_equal(got, want)  # the refit model, ranked by the server
    # and not the best-epoch model trained on train only (what export used to serve)
    assert (torch.topk(best, 10, dim=1).indices.numpy() != want).any()


def test_sweep_reads_test_through_the_same_path_as_train(tiny_data, tmp_path):
    """A sweep trains trials without test, then reads the selected one's test with
    ``evaluate_checkpoint``: the figures (refit included) equal ``mrs train``'s."""
    whole = run_train(_cfg(tiny_data), tmp_path / "train")
    run_train(_cfg(tiny_data), tmp_path / "trial", evaluate_test=False)
    swept = evaluate_checkpoint(tmp_path / "trial", "test")
    assert swept["final_fit"] == whole["final_fit"] == "train+valid"
    assert swept["test"] == whole["test"]
    assert swept["by_query"] == whole["by_query"]
    a = torch.load(tmp_path / "train" / "final.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "trial" / "final.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
