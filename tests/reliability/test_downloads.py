"""Issue 13 §3: ``mrs download-images`` against a misbehaving server on 127.0.0.1.

Truncated bodies are not saved, a slow-drip server is bounded by the total ``--timeout``, cut
chunked streams and garbage status lines are reported failures (never tracebacks), ``file://`` is
never followed and no item id can write outside ``images/``.
"""
from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mrs.data.prepared import write_prepared
from mrs.prep.images import DownloadConfig, download_images
from tests.http_server import threaded_http_server


def _jpeg(size: int = 64) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


JPEG = _jpeg()


class Bad(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        p = self.path
        try:
            if p.startswith("/ok"):
                return self._send(JPEG)
            if p == "/short.jpg":          # Content-Length says more than is sent
                self._head(len(JPEG))
                self.wfile.write(JPEG[: len(JPEG) // 3])
                self.wfile.flush()
                self.close_connection = True
                return
            if p == "/cut-image.jpg":      # complete as HTTP, but the JPEG itself is cut
                return self._send(JPEG[: len(JPEG) // 2])
            if p == "/drip.jpg":           # one byte every 0.5 s, for a minute
                self._head(len(JPEG))
                for b in JPEG[:120]:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.5)
                return
            if p == "/chunked-cut.jpg":    # a chunked stream cut mid-chunk
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"400\r\n" + JPEG[:100])
                self.wfile.flush()
                self.close_connection = True
                return
            if p == "/garbage-status.jpg":  # not HTTP at all
                self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                self.close_connection = True
                return
            self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _head(self, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(n))
        self.end_headers()

    def _send(self, body: bytes) -> None:
        self._head(len(body))
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def base():
    with threaded_http_server(Bad) as url:
        yield url


def _dataset(root, ids, urls):
    n = len(ids)
    items = pd.DataFrame({"item": np.arange(n), "item_id": ids, "text": "", "image": None, "image_url": urls})
    inter = pd.DataFrame({"user": [0] * n, "item": np.arange(n), "split": [0] * n})
    return write_prepared(root, inter, items, pd.DataFrame({"user": [0], "user_id": ["u"]}), name="t",
                          source="test", modes={}, params={}, input_checksum="x",
                          extra={"image_root": "images"})


def _run(d, timeout=2.0, retries=0, workers=4, limit_s=30.0):
    """download_images in a thread; fails (instead of hanging the suite) if it outlives ``limit_s``."""
    out: dict = {}

    def go():
        try:
            out["report"] = download_images(DownloadConfig(dataset=str(d), workers=workers, timeout=timeout,
                                                           retries=retries, backoff=0.01))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t0 = time.monotonic()
    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"download-images still running after {limit_s} s"
    if "error" in out:
        raise out["error"]
    failures = json.loads((d / "image_failures.json").read_text())["failures"]
    return out["report"], {f["item_id"]: f["error"] for f in failures}, time.monotonic() - t0


def test_truncated_body_is_not_saved_and_is_fetched_again(tmp_path, base):
    d = _dataset(tmp_path / "d", ["ok", "short", "cut"], [f"{base}/ok.jpg", f"{base}/short.jpg",
                                                          f"{base}/cut-image.jpg"])
    rep, errors, _ = _run(d)
    assert rep["ok"] == 1 and rep["failed"] == 2
    n = len(JPEG)
    assert errors["short"] == f"truncated body: {n // 3} of {n} bytes"
    assert errors["cut"].startswith("response is not a complete image")
    assert sorted(p.name for p in (d / "images").rglob("*.jpg")) == ["ok.jpg"]
    rep, errors, _ = _run(d)                         # not counted as present: tried again
    assert rep["present"] == 1 and set(errors) == {"short", "cut"}


def test_slow_drip_is_bounded_by_the_total_timeout(tmp_path, base):
    ids = [f"drip{k}" for k in range(6)] + ["ok"]
    d = _dataset(tmp_path / "d", ids, [f"{base}/drip.jpg"] * 6 + [f"{base}/ok.jpg"])
    rep, errors, took = _run(d, timeout=1.5, retries=1, workers=3, limit_s=20)
    assert rep["ok"] == 1 and rep["failed"] == 6
    assert all(e == "timed out: the whole request took more than 1.5 s" for k, e in errors.items())
    assert took < 12  # 6 URLs x 2 attempts x 1.5 s over 3 workers, plus slack


def test_cut_chunked_stream_and_garbage_status_are_reported_and_the_run_goes_on(tmp_path, base):
    d = _dataset(tmp_path / "d", ["chunk", "garbage", "ok"],
                 [f"{base}/chunked-cut.jpg", f"{base}/garbage-status.jpg", f"{base}/ok.jpg"])
    rep, errors, _ = _run(d, retries=1)
    assert rep["ok"] == 1 and rep["failed"] == 2
    assert errors["chunk"].startswith("IncompleteRead")
    assert errors["garbage"].startswith("BadStatusLine")


def test_file_urls_are_never_followed(tmp_path, base):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(JPEG)
    d = _dataset(tmp_path / "d", ["f", "ok"], [f"file://{secret}", f"{base}/ok.jpg"])
    rep, errors, _ = _run(d)
    assert errors == {"f": "unsupported URL scheme 'file': only http and https are fetched"}
    assert not list((d / "images").rglob("f.jpg"))


def test_item_ids_ending_in_dotdot_stay_inside_images(tmp_path, base):
    ids = ["..", "x/..", "dataset..", "ok"]
    d = _dataset(tmp_path / "d", ids, [f"{base}/ok/{k}.jpg" for k in range(4)])
    rep, errors, _ = _run(d)
    assert rep["ok"] == 4 and not errors
    images = (d / "images").resolve()
    written = [p for p in d.resolve().rglob("*.jpg")]
    assert len(written) == 4 and all(p.is_relative_to(images) for p in written)
    assert not list(tmp_path.glob("*.jpg"))


def test_a_bucket_linked_outside_images_is_refused(tmp_path, base):
    outside = tmp_path / "outside"
    outside.mkdir()
    d = _dataset(tmp_path / "d", ["ab", "ok"], [f"{base}/ok/1.jpg", f"{base}/ok/2.jpg"])
    (d / "images").mkdir()
    (d / "images" / "ab").symlink_to(outside)          # the string is inside, the resolved path is not
    rep, errors, _ = _run(d)
    assert rep["ok"] == 1 and "is outside" in errors["ab"]
    assert not list(outside.iterdir())
