"""Issue 13 §1 and §5: ``--out`` of ``mrs prepare`` / ``mrs synth`` never deletes a user's files,
and an unwritable ``--out`` is refused before the input is read."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared
from tests.prep.test_hm import TX, _raw

SYNTH = ["--users", "30", "--items", "40", "--interactions", "300", "--no-images"]


def _prepare(raw: Path, out: Path, *extra: str) -> int:
    return main(["prepare", "hm", "--raw", str(raw), "--out", str(out), *extra])


def test_prepare_refuses_a_non_empty_unrelated_directory(tmp_path, cli_error):
    raw = _raw(tmp_path, TX)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work")
    rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(out)])
    assert "non-empty directory that `mrs prepare` did not write (holds thesis.tex)" in err
    # --overwrite does not make an unrelated directory fair game either
    rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(out), "--overwrite"])
    assert "did not write" in err
    assert (out / "thesis.tex").read_text() == "three years of work"


def test_prepare_refuses_out_equal_to_inside_or_containing_raw(tmp_path, cli_error):
    raw = _raw(tmp_path, TX)
    before = sorted(p.name for p in raw.rglob("*"))
    for out, words in ((raw, "is the same as the input"), (raw / "prepared", "is inside the input"),
                       (tmp_path, "contains the input")):
        rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(out), "--overwrite"])
        assert words in err, err
    assert sorted(p.name for p in raw.rglob("*")) == before
    assert not (raw / "prepared").exists()


def test_prepare_refuses_an_existing_file(tmp_path, cli_error):
    raw = _raw(tmp_path, TX)
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(out), "--overwrite"])
    assert "is an existing file" in err
    assert out.read_text() == "keep me" and not list(tmp_path.glob(".notes.txt.*"))


def test_reprepare_needs_overwrite_and_keeps_features_and_images(tmp_path, cli_error):
    raw = _raw(tmp_path, TX)
    out = tmp_path / "d"
    assert _prepare(raw, out) == 0
    (out / "features").mkdir()
    (out / "features" / "text-minilm.h5").write_bytes(b"hours of extraction")
    (out / "images" / "ab").mkdir(parents=True)
    (out / "images" / "ab" / "x.jpg").write_bytes(b"\xff\xd8downloaded")
    (out / "NOTES.md").write_text("mine")
    rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(out)])
    assert "already holds the output of an earlier `mrs prepare`; pass --overwrite" in err
    assert _prepare(raw, out, "--overwrite", "--last-weeks", "1") == 0
    assert load_prepared(out).meta["params"]["last_weeks"] == 1          # replaced ...
    assert (out / "features" / "text-minilm.h5").read_bytes() == b"hours of extraction"  # ... kept
    assert (out / "images" / "ab" / "x.jpg").is_file() and (out / "NOTES.md").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.")]
    # only an explicit flag drops derived data; the user's own file still stays
    assert _prepare(raw, out, "--overwrite", "--discard-derived") == 0
    assert not (out / "features").exists() and not (out / "images").exists()
    assert (out / "NOTES.md").read_text() == "mine"


def test_a_swap_killed_midway_is_recovered_by_the_next_run(tmp_path):
    raw = _raw(tmp_path, TX)
    out = tmp_path / "d"
    assert _prepare(raw, out) == 0
    # what a SIGKILL after the swap, before features/ was carried over, leaves behind
    old = tmp_path / ".d.old-12345"
    os.replace(out, old)
    assert _prepare(raw, tmp_path / "tmpd") == 0
    os.replace(tmp_path / "tmpd", out)
    (old / "features").mkdir()
    (old / "features" / "image-x.h5").write_bytes(b"precious")
    assert _prepare(raw, out, "--overwrite") == 0
    assert (out / "features" / "image-x.h5").read_bytes() == b"precious"
    assert not old.exists()
    # killed between the two renames: no dataset at --out, the whole old one hidden
    os.replace(out, old)
    assert _prepare(raw, out, "--overwrite") == 0
    assert (out / "features" / "image-x.h5").read_bytes() == b"precious"


def test_synth_refuses_unrelated_files_and_keeps_them_on_overwrite(tmp_path, cli_error):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "data.csv").write_text("x")
    rc, err = cli_error(["synth", "--out", str(out), *SYNTH])
    assert "non-empty directory that `mrs synth` did not write (holds data.csv)" in err
    assert (out / "data.csv").read_text() == "x"
    out2 = tmp_path / "raw2"
    assert main(["synth", "--out", str(out2), *SYNTH]) == 0
    (out2 / "README.txt").write_text("my notes")
    rc, err = cli_error(["synth", "--out", str(out2), *SYNTH])
    assert "pass --overwrite" in err
    assert main(["synth", "--out", str(out2), *SYNTH, "--seed", "3", "--overwrite"]) == 0
    assert (out2 / "README.txt").read_text() == "my notes"
    rc, err = cli_error(["synth", "--out", str(tmp_path / "raw2" / "README.txt"), *SYNTH])
    assert "is an existing file" in err


def _no_read(monkeypatch):
    import mrs.prep.hm as hm

    def read(*a, **k):
        raise AssertionError("the input was read before --out was checked")
    monkeypatch.setattr(hm, "read_csv_typed", read)


def test_unwritable_out_is_refused_before_the_input_is_read(tmp_path, monkeypatch, cli_error):
    raw = _raw(tmp_path, TX)
    _no_read(monkeypatch)
    (tmp_path / "afile").write_text("x")
    rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(tmp_path / "afile" / "sub" / "d")])
    assert "afile is a file, so nothing can be created under it" in err
    if Path("/sys").is_dir():
        rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", "/sys/mrs-test/d"])
        assert "--out /sys/mrs-test/d: cannot write in /sys/mrs-test" in err
    rc, err = cli_error(["synth", "--out", str(tmp_path / "afile" / "x"), *SYNTH])
    assert "is a file" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_out_is_refused_before_the_input_is_read(tmp_path, monkeypatch, cli_error):
    raw = _raw(tmp_path, TX)
    _no_read(monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(ro / "d")])
        assert "cannot write in" in err
    finally:
        ro.chmod(0o755)


def test_negative_windows_are_refused(tmp_path, cli_error):
    raw = _raw(tmp_path, TX)
    rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(tmp_path / "d"), "--last-weeks", "-2"])
    assert "config key 'last_weeks' must be >= 0, got -2" in err
    rc, err = cli_error(["prepare", "hm", "--raw", str(raw), "--out", str(tmp_path / "d"), "--set", "test_days=-7"])
    assert "config key 'test_days' must be >= 0, got -7" in err
    assert not (tmp_path / "d").exists()


MMREC_INTER = "userID\titemID\trating\ttimestamp\tx_label\n" + "".join(
    f"{u}\t{i}\t5\t{t}\t{t - 1}\n" for u in range(3) for t, i in ((1, u), (2, (u + 1) % 3), (3, (u + 2) % 3)))
RECBOLE_INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"u{u}\ti{i}\t5\t{t}\n" for u in range(3) for t, i in ((1, u), (2, (u + 1) % 3), (3, (u + 2) % 3)))


@pytest.mark.parametrize("source,inter", [("mmrec", MMREC_INTER), ("recbole", RECBOLE_INTER)])
def test_mmrec_and_recbole_out_follow_the_same_rules(tmp_path, cli_error, source, inter):
    src = tmp_path / "baby"
    src.mkdir()
    (src / "baby.inter").write_text(inter)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("three years of work")
    rc, err = cli_error(["prepare", source, "--dir", str(src), "--out", str(mine)])
    assert "did not write (holds thesis.tex)" in err and sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    rc, err = cli_error(["prepare", source, "--dir", str(src), "--out", str(src)])
    assert "is the same as the input" in err and sorted(p.name for p in src.iterdir()) == ["baby.inter"]
    out = tmp_path / "ds"
    assert main(["prepare", source, "--dir", str(src), "--out", str(out)]) == 0
    (out / "features").mkdir()
    (out / "features" / "text-x.h5").write_text("extracted")
    rc, err = cli_error(["prepare", source, "--dir", str(src), "--out", str(out)])
    assert "pass --overwrite" in err
    assert main(["prepare", source, "--dir", str(src), "--out", str(out), "--overwrite"]) == 0
    assert (out / "features" / "text-x.h5").read_text() == "extracted"
    assert load_prepared(out).n_users == 3
