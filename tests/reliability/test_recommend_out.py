"""Issue 23 §2, 17: ``mrs recommend --users --out`` never replaces a file silently (its own input
least of all), refuses a directory in one line, and leaves no temporary behind, full disk included."""
from __future__ import annotations

import errno
import os

import pytest

from mrs.cli import main
from mrs.io import atomic_path
from mrs.serve.model import ServedModel


@pytest.fixture
def users_csv(tiny_model, tmp_path):
    users = ServedModel.load(tiny_model).user_ids[:5]
    path = tmp_path / "c.csv"
    path.write_text("customer_id\n" + "".join(f"{u}\n" for u in users))
    return path


def _recommend(model, users, out, *extra):
    return ["recommend", "--model", str(model), "--users", str(users), "--out", str(out),
            "--retrieval", "exact", *extra]


def test_an_existing_out_needs_force(tiny_model, users_csv, tmp_path, cli_error):
    out = tmp_path / "recs.csv"
    out.write_text("precious\n")
    rc, err = cli_error(_recommend(tiny_model, users_csv, out))
    assert f"--out {out}: already exists; pass --force to replace it" in err
    assert out.read_text() == "precious\n"
    assert main(_recommend(tiny_model, users_csv, out, "--force")) == 0
    assert out.read_text().startswith("user_id,items,scores\n")


def test_out_equal_to_the_users_input_is_refused_even_with_force(tiny_model, users_csv, cli_error):
    before = users_csv.read_text()
    link = users_csv.with_name("link.csv")
    link.symlink_to(users_csv)
    for out, extra in ((users_csv, []), (users_csv, ["--force"]), (link, ["--force"])):
        rc, err = cli_error(_recommend(tiny_model, users_csv, out, *extra))
        assert "is the --users input" in err
    assert users_csv.read_text() == before


def test_out_directory_is_one_line_and_leaves_nothing(tiny_model, users_csv, tmp_path, cli_error):
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    rc, err = cli_error(_recommend(tiny_model, users_csv, outdir))
    assert f"--out {outdir}: is a directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "outdir"]


def test_atomic_path_onto_a_directory_removes_its_temporary(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        with atomic_path(tmp_path / "d") as tmp:
            tmp.write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


class _FullDisk:
    """A file opened for writing whose writes fail as on a full disk."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False

    def write(self, s):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _full_disk_open(path, mode="r", *a, **k):
    f = open(path, mode, *a, **k)
    return _FullDisk(f) if "w" in mode else f


def test_out_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_model, users_csv, tmp_path, monkeypatch,
                                                          cli_error):
    import mrs.serve.batch as batch

    monkeypatch.setattr(batch, "open", _full_disk_open, raising=False)
    out = tmp_path / "sub" / "recs.csv"
    rc, err = cli_error(_recommend(tiny_model, users_csv, out))
    assert f"no space left on device: {out.parent}" in err
    assert list(out.parent.iterdir()) == []
