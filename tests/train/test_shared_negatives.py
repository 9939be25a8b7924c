"""``model.loss_negatives_scope=batch``: one set of sampled-softmax negatives shared by every
prediction of a step. The loss must equal the per-prediction loss given the same negatives
repeated on every row (accidental hits masked alike), the trainer must draw ``(1, K)``, and the
scope is refused where it would change another term."""
import pytest
import torch
import torch.nn.functional as F

from mrs.errors import MrsError
from mrs.models.objective import Predictions
from mrs.train.config import load_train_config
from mrs.train.trainer import Trainer, seed_everything
from tests.train.conftest import tiny_overrides
from tests.train.test_loss_terms import one_step


def _model(tiny_data, dataset, user_encoder="sasrec", **kw):
    kw = {"model__loss": "sampled_softmax", "model__loss_negatives": 4, "model__loss_negatives_scope": "batch",
          "model__seq_len": 6, "model__modes": False, "model__reg": 0.0, "train__batch_size": 32, **kw}
    cfg = load_train_config(None, tiny_overrides(tiny_data, model__user_encoder=user_encoder, **kw))
    return Trainer.build(cfg, seed_everything(0), torch.device("cpu"), ds=dataset)


@pytest.fixture(scope="module")
def dataset(tiny_data):
    from mrs.data.prepared import load_prepared

    return load_prepared(tiny_data)


def test_shared_equals_repeated_negatives_and_masks_hits(tiny_data, dataset):
    model = _model(tiny_data, dataset).model
    emb = model.encode()
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, emb[1].shape[1], generator=g)
    pos = torch.tensor([0, 1, 2, 3, 1])
    neg = torch.tensor([[1, 4, 5, 6]])  # item 1 is the target of rows 1 and 4: masked there
    modes = torch.zeros(5, 0, dtype=torch.long)
    users = torch.zeros(5, dtype=torch.long)
    shared, parts = model.training_loss(Predictions(users, q, pos, modes, neg), emb)
    repeated, _ = model.training_loss(Predictions(users, q, pos, modes, neg.expand(5, -1).clone()), emb)
    # by hand: softmax over [target, negatives other than the target]
    item = emb[1]
    want = []
    for r in range(5):
        logits = [q[r] @ item[pos[r]]] + [q[r] @ item[j] for j in neg[0] if j != pos[r]]
        want.append(-F.log_softmax(torch.stack(logits), 0)[0])
    assert torch.allclose(shared, repeated, atol=1e-6)
    assert torch.allclose(shared, torch.stack(want).mean(), atol=1e-5)
    assert parts["sampled_softmax"] == pytest.approx(shared.item(), rel=1e-6)


@pytest.mark.parametrize("user_encoder", ["sasrec", "id"])
def test_trainer_draws_one_set_per_step_and_trains(tiny_data, dataset, user_encoder, monkeypatch):
    tr = _model(tiny_data, dataset, user_encoder=user_encoder)
    seen = []
    from mrs.models import model as model_module

    real = model_module.training_loss

    def spy(model, p, emb, loss, user_rows=True):
        seen.append(tuple(p.neg.shape))
        return real(model, p, emb, loss, user_rows)

    monkeypatch.setattr(model_module, "training_loss", spy)
    before = tr.model.item_emb.weight.detach().clone()
    parts = one_step(tr)
    assert seen and all(s == (1, 4) for s in seen), seen
    assert parts["sampled_softmax"] > 0 and not torch.equal(before, tr.model.item_emb.weight)


def test_batch_scope_refused_where_it_changes_another_term(tiny_data, dataset):
    with pytest.raises(MrsError, match="model.loss_negatives_scope.*main loss is 'ce'"):
        _model(tiny_data, dataset, model__loss="ce")
    with pytest.raises(MrsError, match="model.loss_negatives_scope.*'freedom' compares"):
        _model(tiny_data, dataset, user_encoder="id", model__encoder="freedom",
               data__features="[text-synth, image-synth]")
