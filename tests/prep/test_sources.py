"""A dataset source is one module that registers a :class:`Source`: ``mrs prepare NAME`` appears
with its flags, and the flags, ``--config`` and ``--set`` reach the source's config."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mrs.cli import main
from mrs.prep.sources import SOURCES, Option, Source


@dataclass
class ToyConfig:
    src: str = ""
    out: str = ""
    name: str = ""
    rows: int = 3


def test_a_registered_source_gets_its_prepare_subcommand(tmp_path, capsys, monkeypatch):
    seen = []

    def prepare_toy(cfg: ToyConfig) -> Path:
        seen.append(cfg)
        raise SystemExit(0)  # the config is what this test is about

    SOURCES.register("toy")(Source(help="toy source", config=ToyConfig, prepare=prepare_toy,
                                   required=("src", "out"),
                                   options=(Option("--src", "src"), Option("--rows", "rows", type=int))))
    try:
        with pytest.raises(SystemExit):
            main(["prepare", "--help"])
        assert "toy source" in capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(["prepare", "toy", "--src", "a.txt", "--out", str(tmp_path), "--rows", "5", "--set", "name=t"])
        assert seen == [ToyConfig(src="a.txt", out=str(tmp_path), name="t", rows=5)]
        assert main(["prepare", "toy", "--out", str(tmp_path)]) == 1  # missing required --src
        assert "missing required option 'src'" in capsys.readouterr().err
    finally:
        SOURCES.unregister("toy")


def test_built_in_sources_are_registered():
    assert SOURCES.names()[:3] == ["hm", "amazon2023", "amazon2014"]
