"""The same model on GPU and CPU gives the same loss; the sampler runs on the GPU. Skipped
without CUDA (the code never requires a GPU)."""
import copy

import pytest
import torch

from mrs.models import ENCODERS, Batch, ModelConfig, build_model
from mrs.sampling import NegativeSampler

from .reference import is_train
from .planted import planted

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_cuda_matches_cpu(encoder, tmp_path):
    d = planted(n_users=40, n_items=30, per_user=6)
    torch.manual_seed(0)
    cpu = build_model(ModelConfig(encoder=encoder, fusion="early", dim=8, coupling_mu0=0.5, edge_drop=0.0,
                                  knn_k=3), n_users=d.n_users, n_items=d.n_items, mode_cardinalities=[2, 3],
                      train_users=d.train_users, train_items=d.train_items, features=d.features)
    gpu = copy.deepcopy(cpu).to("cuda")
    b = Batch(torch.tensor([0, 1, 2]), torch.as_tensor(d.train_items[[0, 6, 12]]), torch.tensor([[4, 5], [6, 7], [8, 9]]),
              torch.tensor([[0, 1], [1, 2], [0, 0]]))
    lc, pc = cpu.calculate_loss(b)
    lg, pg = gpu.calculate_loss(b.to("cuda"))
    assert lg.device.type == "cuda"
    assert lg.item() == pytest.approx(lc.item(), rel=1e-4)
    lg.backward()
    assert gpu.user_encoder.emb.weight.grad.device.type == "cuda"
    s = NegativeSampler(d.train_users, d.train_items, d.n_items, seed=0, strategy="dynamic", pick="softmax")
    users = torch.as_tensor(d.train_users, device="cuda")
    modes = torch.zeros(len(users), 2, dtype=torch.long, device="cuda")
    neg = s.sample(users, modes, gpu, gpu.encode())
    assert neg.device.type == "cuda" and not is_train(s, users, neg).any()
    state = s.state_dict()
    x = s.uniform(users)
    s2 = NegativeSampler(d.train_users, d.train_items, d.n_items, seed=0)
    s2.load_state_dict(state)  # a resumed run continues the GPU stream
    assert torch.equal(s2.uniform(users), x)
