"""``mrs export`` / ``mrs recommend`` from the command line, and the H&M submission file."""
from __future__ import annotations

import re

import pandas as pd

from mrs.cli import main
from mrs.serve.service import RecommendService


def test_export_and_recommend_one_user(served, tmp_path, capsys):
    _, run, _ = served
    out = tmp_path / "model"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert list((out / "index").glob("hnsw-*.faiss"))  # built at export
    svc = RecommendService.open(out, retrieval="exact")
    u = svc.model.user_ids[0]
    capsys.readouterr()
    assert main(["recommend", "--model", str(out), "--user", u, "--context", svc.model.mode_labels["context"][1],
                 "-k", "5", "--exclude-seen", "--retrieval", "exact"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"user {u}") and "retrieval: exact" in lines[0]
    want = svc.recommend(u, {"context": svc.model.mode_labels["context"][1]}, 5, True)["items"]
    assert [ln.split()[1] for ln in lines[1:]] == [x["id"] for x in want]
    assert main(["recommend", "--model", str(out), "--user", u, "--context", "moon"]) == 1
    assert "context: unknown label 'moon'" in capsys.readouterr().err


def test_hm_submission_file(served, tmp_path):
    _, _, model_dir = served
    svc = RecommendService.open(model_dir, retrieval="exact")
    ids = svc.model.user_ids
    customers = pd.DataFrame({"customer_id": [ids[0], ids[1], "unknown-customer", ids[0], ids[2]],
                              "age": [30, 40, 50, 30, 20]})
    customers.to_csv(tmp_path / "customers.csv", index=False)
    sub = tmp_path / "submission.csv"
    assert main(["recommend", "--model", str(model_dir), "--users", str(tmp_path / "customers.csv"),
                 "--out", str(sub), "--format", "hm-kaggle", "--exclude-seen"]) == 0
    text = sub.read_text().splitlines()
    assert text[0] == "customer_id,prediction"
    rows = [ln.split(",") for ln in text[1:]]
    assert [r[0] for r in rows] == [ids[0], ids[1], "unknown-customer", ids[2]]  # each customer once
    for _, pred in rows:
        arts = pred.split(" ")
        assert len(arts) == 12 and len(set(arts)) == 12
        assert all(re.fullmatch(r"\d{10}", a) for a in arts)
    first = svc.recommend(ids[0], k=12, exclude_seen=True)["items"]
    assert rows[0][1].split(" ") == [x["id"].zfill(10) for x in first]


def test_batch_csv_and_jsonl(served, tmp_path):
    import json

    _, _, model_dir = served
    svc = RecommendService.open(model_dir, retrieval="folded")
    users = svc.model.user_ids[:30]
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--model", str(model_dir), "--users", str(tmp_path / "users.txt"),
                 "--out", str(out), "-k", "7", "--batch-size", "8", "--time", svc.model.mode_labels["time"][2]]) == 0
    df = pd.read_csv(out, dtype=str)
    assert list(df.columns) == ["user_id", "items", "scores"] and df["user_id"].tolist() == users
    for u, items in zip(df["user_id"], df["items"]):  # batches of 8 = one request at a time
        want = svc.recommend(u, {"time": svc.model.mode_labels["time"][2]}, 7)["items"]
        assert items.split(" ") == [x["id"] for x in want]
    out = tmp_path / "recs.jsonl"
    assert main(["recommend", "--model", str(model_dir), "--users", str(tmp_path / "users.txt"),
                 "--out", str(out), "--format", "jsonl"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 30 and all(len(r["items"]) == 12 for r in rows)
