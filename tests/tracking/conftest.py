from __future__ import annotations

import time
from pathlib import Path

import pytest


def wandb_record(run_path: Path, timeout: float = 20.0) -> bytes:
    """The bytes of an offline run's ``run-*.wandb`` transaction log.

    wandb-core closes the run's stream (and flushes the file) a few ms after ``run.finish()``
    returns, so wait until the file has stopped growing past its 7-byte header.
    """
    deadline, last = time.time() + timeout, -1
    while True:
        files = list(Path(run_path).glob("run-*.wandb"))
        size = files[0].stat().st_size if files else -1
        if (size > 7 and size == last) or time.time() > deadline:
            return files[0].read_bytes() if files else b""
        last = size
        time.sleep(0.2)


@pytest.fixture
def read_record():
    return wandb_record
