"""Issue 23 §1, 9-12, 17: ``mrs export`` never deletes what it did not write, a model directory is
read-only input whose every file (the faiss index too) is hashed and confined, and a full disk
is a one-line error that leaves nothing behind."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat

import pytest

from mrs.errors import MrsError
from mrs.serve.export import FACTORS, MANIFEST
from mrs.serve.service import RecommendService

RUN_FILES = {"best.pt", "last.pt", "metrics.json", "config.yaml", "per_query.parquet"}


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_export_out_equal_to_inside_or_containing_the_run_is_refused(tiny_run, tmp_path, cli_error):
    run = _copy(tiny_run, tmp_path / "runs" / "run")
    before = _tree(run)
    assert RUN_FILES <= set(before)
    for out, what in ((run, "is the same as the input"), (run / "model", "is inside the input"),
                      (tmp_path / "runs", "contains the input")):
        rc, err = cli_error(["export", str(run), "--out", str(out), "--force"])
        assert what in err, err
        assert _tree(run) == before  # the training run is untouched


def test_export_force_never_deletes_files_it_did_not_write(tiny_run, tmp_path, cli_error):
    from mrs.cli import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    rc, err = cli_error(["export", str(tiny_run), "--out", str(mine), "--force", "--index", "none"])
    assert "a non-empty directory that `mrs export` did not write" in err
    assert _tree(mine) == ["notes.txt"]
    out = tmp_path / "model"
    assert main(["export", str(tiny_run), "--out", str(out), "--index", "none"]) == 0
    (out / "notes.txt").write_text("kept")
    rc, err = cli_error(["export", str(tiny_run), "--out", str(out), "--index", "none"])
    assert "pass --force to replace it" in err
    assert main(["export", str(tiny_run), "--out", str(out), "--force"]) == 0  # now with an index
    assert (out / "notes.txt").read_text() == "kept"
    assert any(n.startswith("index/") for n in json.loads((out / MANIFEST).read_text())["files"])


@pytest.mark.parametrize("entry", ["../../../../etc/passwd", "/etc/passwd", "index/../../outside.txt"])
def test_manifest_paths_must_stay_inside_the_model_dir(tiny_model, tmp_path, monkeypatch, entry):
    model = _copy(tiny_model, tmp_path / "m")
    (tmp_path / "outside.txt").write_text("secret")
    man = json.loads((model / MANIFEST).read_text())
    man["files"][entry] = "0" * 64
    (model / MANIFEST).write_text(json.dumps(man))
    import mrs.serve.model as model_mod

    opened = []
    real = model_mod.file_checksum
    monkeypatch.setattr(model_mod, "file_checksum", lambda paths: opened.extend(paths) or real(paths))
    with pytest.raises(MrsError, match=f"files entry '{entry}' is not a file inside"):
        RecommendService.open(model, retrieval="exact")
    assert not any("passwd" in str(p) or "outside" in str(p) for p in opened)


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_index_is_hashed_and_a_damaged_one_is_a_one_line_error(tiny_model, tmp_path, cli_error, damage):
    model = _copy(tiny_model, tmp_path / "m")
    files = json.loads((model / MANIFEST).read_text())["files"]
    index = [n for n in files if n.startswith("index/") and n.endswith(".faiss")]
    assert len(index) == 1 and (model / index[0]).is_file()
    path = model / index[0]
    data = path.read_bytes()
    path.write_bytes(os.urandom(len(data)) if damage == "random" else data[: len(data) // 3])
    rc, err = cli_error(["recommend", "--model", str(model), "--user", "u0"])
    assert f"{path}: missing or its sha256 differs from {MANIFEST}" in err


def test_an_index_not_in_the_manifest_is_never_read(tiny_model, tmp_path):
    """An older export's index/ (unhashed) or another spec's: built in memory instead."""
    from mrs.serve.index import IndexSpec

    model = _copy(tiny_model, tmp_path / "m")
    man = json.loads((model / MANIFEST).read_text())
    name = f"index/{IndexSpec().name(man['n_items'])}.faiss"
    man["files"].pop(name, None)
    (model / MANIFEST).write_text(json.dumps(man))
    (model / name).write_bytes(os.urandom(500))  # would crash faiss's reader
    svc = RecommendService.open(model, retrieval="folded")
    assert len(svc.recommend(svc.model.user_ids[0], k=5)["items"]) == 5


@pytest.mark.parametrize("text,msg", [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"),
                                      ("drop-files", "'files' missing or not a dict")])
def test_a_broken_manifest_is_a_one_line_error(tiny_model, tmp_path, cli_error, text, msg):
    model = _copy(tiny_model, tmp_path / "m")
    if text == "drop-files":
        man = json.loads((model / MANIFEST).read_text())
        del man["files"]
        text = json.dumps(man)
    (model / MANIFEST).write_text(text)
    rc, err = cli_error(["recommend", "--model", str(model), "--user", "u0", "--retrieval", "exact"])
    assert f"{model / MANIFEST}: {msg}" in err


def test_model_files_get_the_umask_permissions(tiny_run, tmp_path):
    from mrs.cli import main

    old = os.umask(0o022)
    try:
        out = tmp_path / "model"
        assert main(["export", str(tiny_run), "--out", str(out)]) == 0
        modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
        assert FACTORS in modes and any(n.startswith("index/") for n in modes)
        assert modes == {n: 0o644 for n in modes}
    finally:
        os.umask(old)


def _no_space(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_export_on_a_full_disk_leaves_nothing(tiny_run, tmp_path, monkeypatch, cli_error):
    import faiss

    monkeypatch.setattr(faiss, "write_index", _no_space)  # the disk fills while the index is written
    out = tmp_path / "out" / "model"
    rc, err = cli_error(["export", str(tiny_run), "--out", str(out)])
    assert f"no space left on device: {out.parent} (writing {out.name})" in err  # not the temporary's
    assert not out.exists() and os.listdir(out.parent) == []


def test_serving_never_writes_into_the_model_dir(tiny_run, tmp_path):
    """A model directory is read-only input: an index it lacks is built in memory."""
    from mrs.cli import main

    out = tmp_path / "model"
    assert main(["export", str(tiny_run), "--out", str(out), "--index", "none"]) == 0
    before = _tree(out)
    for kind in ("hnsw", "ivf"):
        assert main(["recommend", "--model", str(out), "--user", "u0", "--index", kind]) == 0
        svc = RecommendService.open(out, retrieval="two_stage")
        assert len(svc.recommend(svc.model.user_ids[0], k=3)["items"]) == 3
    assert _tree(out) == before
