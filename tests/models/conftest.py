"""Model tests use tiny tensors: one intra-op thread is faster than two (and far faster on a busy
machine, where OpenMP threads wait on each other)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
