"""How many queries and items one ranking block may hold, from a memory budget.

A block of ``B`` queries scored against ``C`` items costs about ``B · C · cell_bytes`` (the
float32 scores plus one same-sized temporary: the masked copy / ``topk``'s work space), plus
``B · n_items · row_bytes`` for what the sampled protocol holds per full row (uniform keys and
the candidate mask). The planner takes the largest query batch (up to ``eval.batch_size``) whose
full rows fit the budget; when fewer than ``MIN_QUERIES`` full rows fit (a 1M-item catalogue on
a small budget), it keeps ``MIN_QUERIES`` queries and splits the items into chunks, and the
ranking merges each chunk's top-k into a running top-k (exact: the top-k of a union is the
top-k of the per-part top-ks).

``eval.max_memory_mb = 0`` (auto) means: on CPU, 1/8 of the machine's RAM capped at 2 GiB; on a
GPU, half of the device memory free when evaluation starts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

MIN_QUERIES = 256      # below this many queries per block, chunk the items instead
CELL_BYTES = 8         # float32 score + one same-sized temporary per (query, item) cell
SAMPLED_ROW_BYTES = 6  # sampled protocol: float32 key + bool candidate (+ slack) per item of a row
CPU_AUTO_CAP_MB = 2048


@dataclass(frozen=True)
class Plan:
    query_batch: int   # B: queries per block
    item_chunk: int    # C: items per block (== n_items when rows are not split)
    budget_mb: float   # the budget the plan was made for

    def block_bytes(self, n_items: int, row_bytes: int = 0) -> int:
        return self.query_batch * (self.item_chunk * CELL_BYTES + n_items * row_bytes)


def resolve_budget_mb(max_memory_mb: float, device: torch.device | str = "cpu") -> float:
    """The budget in MiB: ``max_memory_mb`` when positive, else the automatic one (module doc)."""
    if max_memory_mb > 0:
        return float(max_memory_mb)
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return free / 2 / 2**20
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return float(CPU_AUTO_CAP_MB)
    return float(min(CPU_AUTO_CAP_MB, ram / 8 / 2**20))


def plan_blocks(n_queries: int, n_items: int, k: int, budget_mb: float, max_batch: int,
                row_bytes: int = 0) -> Plan:
    """Query batch ``B`` and item chunk ``C`` with ``B · (C · CELL_BYTES + n_items · row_bytes)``
    within ``budget_mb`` (never below one query and ``k`` items, whatever the budget)."""
    budget = budget_mb * 2**20
    b_cap = max(1, min(max_batch, n_queries))
    full_row = n_items * (CELL_BYTES + row_bytes)
    b_full = int(budget // max(full_row, 1))
    if b_full >= min(b_cap, MIN_QUERIES):
        return Plan(min(b_cap, b_full), n_items, budget_mb)
    b = min(b_cap, MIN_QUERIES)
    while True:   # halve the query batch when even the fixed per-row cost does not fit
        c = int((budget / b - n_items * row_bytes) // CELL_BYTES)
        if c >= k or b == 1:
            return Plan(b, max(min(c, n_items), min(k, n_items), 1), budget_mb)
        b = max(1, b // 2)
