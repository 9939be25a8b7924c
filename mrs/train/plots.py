"""PNG plots for run directories and compare reports (matplotlib, Agg backend, atomic writes)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mrs.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers / CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


def plot_history(history: list[dict[str, Any]], select_metric: str, path: Path) -> Path:
    """Training loss and the validation selection metric per epoch (two panels)."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    ep = [h["epoch"] for h in history]
    a.plot(ep, [h.get("loss", float("nan")) for h in history], marker=".")  # closed form: no loss
    a.set(xlabel="epoch", ylabel="train loss", title="loss")
    key = f"valid/{select_metric}"
    pts = [(h["epoch"], h[key]) for h in history if key in h]
    if pts:
        b.plot(*zip(*pts), marker=".", color="C1")
    b.set(xlabel="epoch", ylabel=select_metric, title=f"valid {select_metric}")
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_tail_head(rows: list[dict[str, Any]], metric: str, path: Path, title: str = "") -> Path:
    """Tail vs head ``metric`` per variant, with 95% bootstrap intervals as error bars.

    ``rows``: ``{"variant", "head", "head_ci": [lo, hi], "tail", "tail_ci": [lo, hi]}``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, r in enumerate(rows):
        if r.get("head") is None or r.get("tail") is None:
            continue
        xerr = _err(r["head"], r.get("head_ci"))
        yerr = _err(r["tail"], r.get("tail_ci"))
        ax.errorbar(r["head"], r["tail"], xerr=xerr, yerr=yerr, fmt="o", capsize=3,
                    color=f"C{i % 10}", label=r["variant"])
        ax.annotate(r["variant"], (r["head"], r["tail"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.set(xlabel=f"head {metric}", ylabel=f"tail {metric}",
           title=title or f"tail vs head {metric} (95% bootstrap CI)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    else:  # e.g. no head or tail queries on a tiny dataset: say so instead of an empty plot
        ax.text(0.5, 0.5, "no variant has both head and tail values", ha="center",
                transform=ax.transAxes)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _err(value: float, ci: list[float | None] | None):
    if not ci or ci[0] is None or ci[1] is None:
        return None
    return [[max(value - ci[0], 0.0)], [max(ci[1] - value, 0.0)]]
