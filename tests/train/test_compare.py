"""``mrs compare`` writes its table (markdown + CSV) and plot, and does not retrain finished variants."""
from __future__ import annotations

import csv

import pytest

from mrs.cli import main as mrs_main


@pytest.mark.slow  # ~30 s on the shared 2-core box
def test_compare_writes_table_and_plot_and_resumes(tiny_data, tmp_path, capsys):
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"""
data: {{dir: {tiny_data}}}
model: {{dim: 8}}
train: {{epochs: 2, batch_size: 256, lr: 0.01, device: cpu}}
eval: {{bootstrap: 50, ks: [10, 20]}}
report: [recall@20]
variants:
  - {{name: mf, set: {{model.encoder: mf, model.modes: false}}}}
  - {{name: mf+cp, set: {{model.encoder: mf, model.modes: true}}}}
""")
    out = tmp_path / "cmp"
    assert mrs_main(["compare", "--config", str(cfg), "--out", str(out), "--no-wandb"]) == 0
    for f in ("compare.md", "compare.csv", "tail_head.png", "config.yaml",
              "runs/mf/metrics.json", "runs/mf+cp/metrics.json"):
        assert (out / f).is_file(), f
    assert (out / "tail_head.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "compare.md").read_text()
    assert "| mf |" in md and "| mf+cp |" in md and "tail recall@20" in md and "head recall@20" in md
    rows = list(csv.DictReader((out / "compare.csv").open()))
    got = {(r["variant"], r["slice"]) for r in rows if r["metric"] == "recall@20"}
    assert got == {(v, s) for v in ("mf", "mf+cp") for s in ("all", "tail", "head", "cold")}
    for r in rows:
        if r["ci_lo"]:
            assert float(r["ci_lo"]) <= float(r["value"]) <= float(r["ci_hi"])
    stamp = (out / "runs/mf/metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert mrs_main(["compare", "--config", str(cfg), "--out", str(out), "--no-wandb"]) == 0
    assert "mf: done, reusing" in capsys.readouterr().out
    assert (out / "runs/mf/metrics.json").stat().st_mtime_ns == stamp


def test_compare_bad_variant_names_the_variant(tiny_data, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"data: {{dir: {tiny_data}}}\nvariants:\n  - {{name: x, set: {{model.encodr: mf}}}}\n")
    assert mrs_main(["compare", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "variant 'x'" in err and "'model.encodr'" in err


def test_a_variants_nested_override_does_not_leak_into_the_next(tmp_path):
    from mrs.train.compare import load_compare

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {features: [a, b]}\nvariants:\n"
                   "  - {name: one, set: {data.features: [a]}}\n  - {name: two}\n")
    (_, one), (_, two) = load_compare(cfg)[0]
    assert one.data.features == ["a"] and two.data.features == ["a", "b"]


def test_default_variants_leave_out_content_encoders_without_features(tmp_path):
    """vbpr and lattice need item content: on data without data.features the default variants skip
    them (every run would stop with 'needs item features'); with features they are compared."""
    from mrs.train.compare import load_compare

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {features: []}\n")
    names = [n for n, _ in load_compare(cfg)[0]]
    assert "mf" in names and "bm3+cp" in names and not {"vbpr", "lattice+cp"} & set(names)
    cfg.write_text("data: {features: [a]}\n")
    assert {"vbpr", "vbpr+cp", "lattice", "lattice+cp"} <= {n for n, _ in load_compare(cfg)[0]}


def test_a_finished_run_is_reused_only_for_the_same_config(tiny_data, tmp_path, capsys):
    """Editing a variant's hyper-parameter must retrain or stop, never report the old model;
    a result-neutral key (thread count) still reuses."""
    def write(k: int, threads: int) -> str:
        cfg = tmp_path / "compare.yaml"
        cfg.write_text(f"data: {{dir: {tiny_data}}}\ntrain: {{num_threads: {threads}}}\n"
                       f"eval: {{bootstrap: 20, ks: [20]}}\nreport: [recall@20]\nvariants:\n"
                       f"  - {{name: knn, set: {{model.encoder: itemknn, model.options.itemknn.k: {k}}}}}\n")
        return str(cfg)

    out = str(tmp_path / "cmp")
    assert mrs_main(["compare", "--config", write(5, 1), "--out", out, "--no-wandb"]) == 0
    capsys.readouterr()
    assert mrs_main(["compare", "--config", write(5, 2), "--out", out, "--no-wandb"]) == 0
    assert "knn: done, reusing" in capsys.readouterr().out
    assert mrs_main(["compare", "--config", write(7, 1), "--out", out, "--no-wandb", "--report-only"]) == 1
    err = capsys.readouterr().err.strip()
    assert "runs/knn" in err and "model.options.itemknn.k: 5 -> 7" in err and len(err.splitlines()) == 1
