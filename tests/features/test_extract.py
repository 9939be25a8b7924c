"""Extraction end to end with a tiny random timm model and the shipped MiniLM: bad inputs,
both stores identical, kill-and-resume, shard + merge equal to one run."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mrs.errors import MrsError
from mrs.features import load_features, read_store
from mrs.features.extract import ExtractConfig, extract, report_path
from mrs.features.merge import find_shards, merge_shards

TINY = dict(modality="image", encoder="test_efficientnet", pretrained=False, workers=0, batch_size=4)


def _bad_images(root: Path, save_images) -> list:
    """One image of every awkward kind; returns the items' image column."""
    from PIL import Image

    names = save_images(root, 3)
    rgb = Image.open(root / names[0]).convert("RGB")
    rgb.convert("L").save(root / "gray.png")
    rgb.convert("L").convert("RGB").save(root / "gray_as_rgb.png")
    rgb.convert("CMYK").save(root / "cmyk.jpg")
    rgb.convert("P", palette=Image.ADAPTIVE).save(root / "palette.png")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(root / "rgba.png")
    rgb.save(root / "rgb.png")
    data = (root / names[1]).read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "empty.jpg").write_bytes(b"")
    return [names[0], "gray.png", "gray_as_rgb.png", "cmyk.jpg", "palette.png", "rgba.png", "rgb.png",
            "truncated.jpg", "garbage.jpg", "empty.jpg", "nope/missing.jpg", None,
            "https://example.com/x.jpg", names[2]]


def test_image_bad_inputs_and_report(dataset_factory, images_factory, tmp_path, capsys):
    images = _bad_images(tmp_path / "img", images_factory)
    ids = [f"it{i}" for i in range(len(images))]
    ds = dataset_factory(tmp_path / "ds", ids, images=images, image_root=tmp_path / "img")
    report = extract(ds, ExtractConfig(**TINY, chunk_size=8), progress=False)
    _, feats, present, meta = read_store(ds / "features" / "image-test_efficientnet.h5")
    assert present.tolist() == [True] * 7 + [False] * 6 + [True]
    f = feats.astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(f[present], axis=1), 1.0, atol=2e-3)  # L2-normalised (fp16)
    assert not f[~present].any()
    np.testing.assert_array_equal(f[1], f[2])  # grayscale == the same pixels as RGB
    np.testing.assert_array_equal(f[5], f[6])  # opaque RGBA == its RGB
    assert meta["dim"] == 256 and meta["normalisation"] == "l2" and meta["n_present"] == 8
    probs = report["problems"]
    assert {k: v["count"] for k, v in probs.items()} == {
        "corrupt_image": 2, "empty_file": 1, "missing_file": 1, "no_image": 1, "url_not_downloaded": 1}
    assert probs["corrupt_image"]["first_ids"] == ["it7", "it8"]
    saved = json.loads(report_path(ds / "features" / "image-test_efficientnet.h5").read_text())
    assert saved == report and saved["present"] == 8 and saved["missing"] == 6
    assert "corrupt_image: 2" in capsys.readouterr().out
    assert not list((ds / "features").glob(".*"))  # work dir and temporaries cleaned up


def test_both_stores_identical_for_one_extraction(dataset_factory, images_factory, tmp_path):
    names = images_factory(tmp_path / "img", 10)
    ds = dataset_factory(tmp_path / "ds", [f"i{k}" for k in range(10)], images=names + [], image_root=tmp_path / "img")
    extract(ds, ExtractConfig(**TINY, store="h5", chunk_size=4), progress=False)
    extract(ds, ExtractConfig(**TINY, store="lmdb", chunk_size=4), progress=False)
    a = read_store(ds / "features" / "image-test_efficientnet.h5")
    b = read_store(ds / "features" / "image-test_efficientnet.lmdb")
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[3]["input_checksum"] == b[3]["input_checksum"]
    xa, _ = load_features(ds, "image-test_efficientnet.h5")
    xb, _ = load_features(ds, "image-test_efficientnet.lmdb")
    assert (xa == xb).all()


_CHILD = """
import sys
from mrs.features.extract import ExtractConfig, extract
extract(sys.argv[1], ExtractConfig(modality="image", encoder="test_efficientnet", pretrained=False,
        workers=0, batch_size=2, chunk_size=2, out=sys.argv[2]), progress=False)
"""


def _kill_after_first_chunk(argv: list[str], work: Path, timeout: float = 120.0) -> int:
    """Run ``argv``; SIGKILL it (no cleanup of any kind runs) as soon as ``work`` holds a
    finished chunk file, observed from outside. Returns the number of chunks then on disk."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not list(work.glob("chunk-*.npz")):
            if proc.poll() is not None:
                raise AssertionError(f"extraction ended before it could be killed: {proc.stderr.read()[-2000:]!r}")
            if time.monotonic() > deadline:
                raise AssertionError("no chunk file appeared")
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    return len(list(work.glob("chunk-*.npz")))


def test_kill_and_resume_gives_the_same_store(dataset_factory, images_factory, tmp_path, caplog):
    n = 40  # 20 chunks of 2: the kill lands long before the last one
    names = images_factory(tmp_path / "img", n)
    names[5] = "missing.jpg"
    ds = dataset_factory(tmp_path / "ds", [f"i{k}" for k in range(n)], images=names, image_root=tmp_path / "img")
    killed = tmp_path / "resumed.h5"
    work = tmp_path / ".resumed.h5.work"
    done = _kill_after_first_chunk([sys.executable, "-c", _CHILD, str(ds), str(killed)], work)
    assert 1 <= done < n // 2 and not killed.exists()
    cfg = {**TINY, "workers": 0, "batch_size": 2, "chunk_size": 2}
    with caplog.at_level(logging.INFO, logger="mrs.features.extract"):
        extract(ds, ExtractConfig(**cfg, out=str(killed)), progress=False)
    assert f"resuming resumed.h5: {done} of {n // 2} chunks already done" in caplog.text
    whole = tmp_path / "whole.h5"
    extract(ds, ExtractConfig(**cfg, out=str(whole)), progress=False)
    a, b = read_store(killed), read_store(whole)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[3]["input_checksum"] == b[3]["input_checksum"] and not a[2][5] and a[2].sum() == n - 1
    assert not work.exists()


def test_shards_merge_to_the_unsharded_store(dataset_factory, images_factory, tmp_path):
    names = images_factory(tmp_path / "img", 7)
    names[1], names[3] = None, "gone.jpg"
    ds = dataset_factory(tmp_path / "ds", [f"t{k}" for k in range(7)], images=names, image_root=tmp_path / "img")
    base = dict(**{**TINY, "batch_size": 2}, chunk_size=2, store="lmdb")
    whole = read_store(Path(extract(ds, ExtractConfig(**base), progress=False)["store"]))
    for k in range(3):
        extract(ds, ExtractConfig(**base, shard=f"{k}/3"), progress=False)
    shards = find_shards(ds / "features", "image-test_efficientnet")
    assert [p.name for p in shards] == [f"image-test_efficientnet.shard-{k}-of-3.lmdb" for k in range(3)]
    assert [len(read_store(p)[0]) for p in shards] == [2, 2, 3]  # chunk-aligned: chunks 0 | 1 | 2-3
    with pytest.raises(MrsError, match="another item list|shard 0/3"):
        load_features(ds, shards[0])
    with pytest.raises(MrsError, match=r"shards \[2\] of 3 are missing"):
        merge_shards(shards[:2], tmp_path / "m.h5")
    merged = read_store(merge_shards(shards, tmp_path / "m.h5"))
    assert merged[0] == whole[0] and merged[2].tolist() == [True, False, True, False, True, True, True]
    np.testing.assert_array_equal(merged[1], whole[1])
    assert merged[3]["input_checksum"] == whole[3]["input_checksum"]
    rep = json.loads(report_path(tmp_path / "m.h5").read_text())
    assert rep["problems"]["no_image"] == {"count": 1, "first_ids": ["t1"]} and rep["present"] == 5


def test_minilm_text_features(dataset_factory, images_factory, tmp_path):
    texts = ["a small kitten sleeping", "a little cat asleep", "quarterly stock market report", None, "\t "]
    ds = dataset_factory(tmp_path / "ds", ["a", "b", "c", "d", "e"], texts=texts)
    rep = extract(ds, ExtractConfig(modality="text", dtype="float32"), progress=False)
    assert rep["present"] == 3 and rep["problems"]["empty_text"]["first_ids"] == ["d", "e"]
    x, present = load_features(ds, "text-minilm", fill="zeros")
    assert x.shape == (5, 384) and present.tolist() == [True, True, True, False, False]
    sim = x @ x.T
    assert sim[0, 1] > sim[0, 2] + 0.3  # kitten ~ cat, far from stocks
    # Padding must not change an embedding: batched (padded) == alone.
    from mrs.features.text import TextEncoder

    enc = TextEncoder("minilm")
    alone = enc(**enc.tokenize([texts[1]]))[0]
    assert np.allclose(alone.numpy(), x[1].numpy(), atol=1e-5)


def test_settings_change_discards_work_and_bad_encoder_is_one_line(dataset_factory, images_factory, tmp_path):
    ds = dataset_factory(tmp_path / "ds", ["a", "b"], texts=["x", "y"])
    with pytest.raises(MrsError, match="text encoder '/nonexistent/model'"):
        extract(ds, ExtractConfig(modality="text", encoder="/nonexistent/model"), progress=False)
    with pytest.raises(MrsError, match="--shard '3/2'"):
        extract(ds, ExtractConfig(modality="text", shard="3/2"), progress=False)
    with pytest.raises(MrsError, match="image encoder 'no_such_model'"):
        extract(ds, ExtractConfig(modality="image", encoder="no_such_model"), progress=False)
    import pandas as pd

    items = pd.read_parquet(ds / "items.parquet").drop(columns=["text"])
    items.to_parquet(ds / "items.parquet")
    with pytest.raises(MrsError, match=r"items.parquet: no 'text' column"):
        extract(ds, ExtractConfig(modality="text"), progress=False)
    with pytest.raises(MrsError, match="dataset.json: missing"):
        extract(tmp_path / "nowhere", ExtractConfig(modality="text"), progress=False)


def test_cuda_fp16_matches_cpu(dataset_factory, images_factory, tmp_path):
    """On a GPU the pipeline runs the forward in fp16 autocast: features stay within fp16 error."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    names = images_factory(tmp_path / "img", 12)
    ds = dataset_factory(tmp_path / "ds", [f"i{k}" for k in range(12)], images=names, image_root=tmp_path / "img")
    cpu = extract(ds, ExtractConfig(**TINY, device="cpu", out=str(tmp_path / "cpu.h5")), progress=False)
    gpu = extract(ds, ExtractConfig(**{**TINY, "workers": 2}, device="cuda", out=str(tmp_path / "gpu.h5")),
                  progress=False)
    a, b = read_store(Path(cpu["store"]))[1].astype(np.float32), read_store(Path(gpu["store"]))[1].astype(np.float32)
    cos = (a * b).sum(1)
    assert cos.min() > 0.99, cos


def test_any_bert_model_from_a_local_dir(dataset_factory, tmp_path):
    """A BERT-family model saved locally (tiny, random) is used by path; the store is named after it."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mrs.features.text import text_encoder_path

    tok = AutoTokenizer.from_pretrained(text_encoder_path("minilm"), local_files_only=True)
    model_dir = tmp_path / "tiny-bert"
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    ds = dataset_factory(tmp_path / "ds", ["a", "b", "c"], texts=["red shirt", "blue jeans", ""])
    rep = extract(ds, ExtractConfig(modality="text", encoder=str(model_dir), max_length=8), progress=False)
    assert rep["store"].endswith("text-tiny-bert.h5") and rep["present"] == 2
    x, present = load_features(ds, "text-tiny-bert", fill="zeros")
    assert x.shape == (3, 32) and present.tolist() == [True, True, False]
    assert np.allclose(x[:2].norm(dim=1).numpy(), 1.0, atol=1e-3)


def test_timm_model_with_local_weights_file(tmp_path):
    """``--weights FILE`` loads a local checkpoint into any timm model (via pretrained_cfg_overlay)."""
    import timm
    import torch

    from mrs.features.image import ImageEncoder

    torch.manual_seed(7)
    src = timm.create_model("test_efficientnet", pretrained=False).eval()
    torch.save(src.state_dict(), tmp_path / "w.pth")
    enc = ImageEncoder("test_efficientnet", weights=str(tmp_path / "w.pth"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = torch.nn.functional.normalize(src.forward_head(src.forward_features(x), pre_logits=True), dim=-1)
    torch.testing.assert_close(enc(x), want)
    assert "w.pth" in enc.version
