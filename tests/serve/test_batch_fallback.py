"""Issue 23 §23: a batch where the model knows (almost) none of the users says so, and an empty
users file is an error rather than a header-only submission."""
from __future__ import annotations

import logging

import pandas as pd
import pytest

from mrs.cli import main


def _customers(path, ids) -> str:
    pd.DataFrame({"customer_id": list(ids)}).to_csv(path, index=False)
    return str(path)


def _recommend(model_dir, users: str, out) -> int:
    return main(["recommend", "--model", str(model_dir), "--retrieval", "exact", "--users", users,
                 "--out", str(out), "--format", "hm-kaggle"])


def _messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mrs.serve.batch" and r.levelno == level]


def test_all_unknown_customers_are_counted_and_warned(served, tmp_path, caplog):
    model_dir = served[2]
    caplog.set_level(logging.INFO)
    users = _customers(tmp_path / "c.csv", [f"nobody-{j}" for j in range(5)])
    assert _recommend(model_dir, users, tmp_path / "sub.csv") == 0
    rows = (tmp_path / "sub.csv").read_text().splitlines()[1:]
    assert len(rows) == 5 and len({r.split(",")[1] for r in rows}) == 1  # the premise: one popular list
    assert _messages(caplog, logging.INFO) == ["5 of 5 users unknown to the model: popular-items fallback"]
    (warn,) = _messages(caplog, logging.WARNING)
    assert "every one of the 5 users is unknown to the model" in warn


def test_most_unknown_warns_and_few_unknown_only_counts(served, tmp_path, caplog):
    from mrs.serve.model import ServedModel

    model_dir = served[2]
    known = ServedModel.load(model_dir).user_ids
    caplog.set_level(logging.INFO)
    users = _customers(tmp_path / "c.csv", [known[0], "x1", "x2", "x3"])
    assert _recommend(model_dir, users, tmp_path / "sub.csv") == 0
    assert _messages(caplog, logging.INFO) == ["3 of 4 users unknown to the model: popular-items fallback"]
    assert _messages(caplog, logging.WARNING) == ["3 of 4 users (75%) are unknown to the model: their "
                                                  "rows are the same popular-items list"]
    caplog.clear()
    users = _customers(tmp_path / "c2.csv", [known[0], known[1], known[2], "x1"])
    assert _recommend(model_dir, users, tmp_path / "sub2.csv") == 0
    assert _messages(caplog, logging.INFO) == ["1 of 4 users unknown to the model: popular-items fallback"]
    assert _messages(caplog, logging.WARNING) == []


@pytest.mark.parametrize("text,why", [("customer_id\n", "only the header, column 'customer_id'"),
                                      ("", "empty file"), ("\n  \n", "empty file")])
def test_empty_users_file_is_an_error_and_writes_nothing(served, tmp_path, capsys, text, why):
    (tmp_path / "c.csv").write_text(text)
    assert _recommend(served[2], str(tmp_path / "c.csv"), tmp_path / "sub.csv") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mrs recommend: error: {tmp_path / 'c.csv'}: no user ids ({why})"]
    assert not (tmp_path / "sub.csv").exists()
