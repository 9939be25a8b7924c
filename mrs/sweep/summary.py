"""The sweep's report: ``summary.csv``, ``summary.md`` (every trial; the selected one marked, with
its test metrics) and ``summary.png`` (validation metric against each swept parameter)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mrs.io import atomic_path, write_text_atomic

TEST_METRICS_SHOWN = 6  # test columns in the markdown (all of them are in selected.json)


def trial_rows(sweep) -> tuple[list[str], list[list[Any]]]:
    """Header and one row per trial, in trial order."""
    st, spec = sweep.state, sweep.spec
    keys = [p.key for p in spec.swept]
    sel = (st.selected or {}).get("id")
    header = ["trial", *keys, spec.metric, "status", "selected", "time_s"]
    rows = []
    for tid in sorted(st.trials):
        t = st.trials[tid]
        rows.append([tid, *[_raw(t["params"].get(k)) for k in keys], t.get("value"),
                     t["status"] if not t.get("error") else f"failed: {t['error']}",
                     "*" if tid == sel else "", t.get("time_s")])
    return header, rows


def test_metrics(sweep) -> dict[str, float]:
    """The selected trial's test metrics, slice ``all`` first, flattened to ``slice/metric``."""
    test = (sweep.state.selected or {}).get("test") or {}
    out: dict[str, float] = {}
    for slice_name in sorted(test, key=lambda s: (s != "all", s)):
        vals = test[slice_name]
        if isinstance(vals, dict):
            out.update({f"{slice_name}/{m}": v for m, v in vals.items()})
        else:
            out[slice_name] = vals
    return out


def write_summary(sweep) -> None:
    out: Path = sweep.out
    header, rows = trial_rows(sweep)
    _write_csv(out / "summary.csv", header, rows)
    write_text_atomic(out / "summary.md", _markdown(sweep, header, rows))
    if rows:
        plot_sweep(sweep, out / "summary.png")


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _markdown(sweep, header: list[str], rows: list[list[Any]]) -> str:
    st, spec = sweep.state, sweep.spec
    n_done = sum(t["status"] == "finished" for t in st.trials.values())
    sets = ", ".join(f"`{o}`" for o in st.data.get("overrides") or []) or "none"
    lines = [f"# Sweep `{spec.name}` ({spec.method})", "",
             f"Spec: `{spec.path}` (copy: sweep.yaml). Every trial starts from base.yaml "
             f"(base_config and --set: {sets}). Selection: {spec.goal} `{spec.metric}` on "
             f"validation; {n_done} of {len(st.trials)} trials finished. `*` marks the selected "
             f"trial.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        *rest, time_s = r
        lines.append("| " + " | ".join([*(_cell(v) for v in rest),
                                        "" if time_s is None else f"{time_s:.1f}"]) + " |")
    sel = st.selected
    if sel:
        lines += ["", f"## Selected: {sel['id']} ({spec.metric} = {_cell(sel['value'])})", "",
                  "Parameters: " + ", ".join(f"`{k}={_fmt_value(v)}`"
                                             for k, v in sel["params"].items()), ""]
        test = test_metrics(sweep)
        if test:
            shown = list(test.items())[:TEST_METRICS_SHOWN]
            lines += ["Test metrics (computed once, for this trial only; all in selected.json):",
                      "", "| " + " | ".join(k for k, _ in shown) + " |",
                      "|" + "---|" * len(shown),
                      "| " + " | ".join(_cell(v) for _, v in shown) + " |"]
    return "\n".join(lines) + "\n"


def plot_sweep(sweep, path: Path) -> None:
    """One panel per swept parameter: each finished trial's validation metric; selected in red."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    st, spec = sweep.state, sweep.spec
    params = spec.swept
    done = [t for t in st.trials.values() if t["status"] == "finished" and t.get("value") is not None]
    sel = (st.selected or {}).get("id")
    fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 3.0), squeeze=False,
                             sharey=True)
    for ax, p in zip(axes[0], params):
        if p.distribution == "categorical":
            labels = [_fmt_value(v) for v in p.values]
            xs = [labels.index(_fmt_value(t["params"][p.key])) for t in done]
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
            ax.set_xlim(-0.5, len(labels) - 0.5)
            # spread trials that share a category so overlapping points stay visible
            xs = [x + 0.3 * ((i * 0.618) % 1 - 0.5) for i, x in enumerate(xs)]
        else:
            xs = [t["params"][p.key] for t in done]
            if "log" in p.distribution:
                ax.set_xscale("log")
        ys = [t["value"] for t in done]
        ax.scatter(xs, ys, c="tab:blue", s=22, alpha=0.7)
        chosen = [(x, y) for x, y, t in zip(xs, ys, done) if t["id"] == sel]
        if chosen:   # on top, so a tie never hides it
            ax.scatter(*zip(*chosen), c="tab:red", s=60, edgecolors="black", zorder=3)
        ax.set_xlabel(p.key, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{spec.metric} ({spec.goal})", fontsize=9)
    fig.suptitle(f"sweep {spec.name}: {len(done)} trials, selected {sel or '-'} (red)",
                 fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _raw(v: Any) -> Any:
    return json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else v


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    return str(v).replace("|", "\\|")
