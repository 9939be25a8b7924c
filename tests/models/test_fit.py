import pytest
import torch

from mrs.models import ENCODERS, ModelConfig, build_model

from .planted import fit, planted, recall_at

# encoders whose untrained scores already rank by content: LGMRec adds unit-norm modality rows
# (the user's row: the mean content of its items) to small ID rows, so at initialisation it
# recommends the planted cluster (recall ≈ 0.47, the ceiling); only the trained bound applies
CONTENT_AT_INIT = {"lgmrec"}


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_quick_fit_recovers_planted_clusters(encoder):
    d = planted(n_users=120, n_items=90, per_user=10, held_out=2)
    torch.manual_seed(0)
    m = build_model(ModelConfig(encoder=encoder, dim=8, edge_drop=0.3), n_users=d.n_users, n_items=d.n_items,
                    mode_cardinalities=[], train_users=d.train_users, train_items=d.train_items,
                    features=d.features if encoder in ("freedom", "bm3") or ENCODERS.get(encoder).needs_features else None)
    m.eval()
    before = recall_at(m, d)
    fit(m, d, epochs=10)
    after = recall_at(m, d)
    # chance: 10 of the 80 unseen items ≈ 0.125; the own cluster has 30 - 8 = 22 candidates -> ≈ 0.45
    assert after > 0.3
    if encoder not in CONTENT_AT_INIT:
        assert before < 0.25 and after > before + 0.15
