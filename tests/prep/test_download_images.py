"""``mrs download-images`` against an HTTP server the test runs on 127.0.0.1."""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import numpy as np
import pandas as pd
import pytest

from mrs.cli import main
from mrs.data.prepared import load_prepared, write_prepared
from mrs.prep.images import DownloadConfig, download_images, local_name
from tests.http_server import threaded_http_server

def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


JPEG = _jpeg()  # a real, decodable image: the downloader checks that it decodes


class Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_GET(self):  # noqa: N802
        n = Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        if self.path.startswith("/ok/"):
            return self._send(200, JPEG)
        if self.path == "/flaky.jpg" and n >= 3:          # two 503s, then the image
            return self._send(200, JPEG)
        if self.path == "/flaky.jpg":
            return self._send(503, b"busy")
        if self.path == "/slow.jpg":
            time.sleep(1.0)
            return self._send(200, JPEG)
        if self.path == "/html.jpg":
            return self._send(200, b"<html>error</html>")
        return self._send(404, b"nope")

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    Handler.hits = {}
    with threaded_http_server(Handler) as url:
        yield url


def _dataset(tmp_path, base):
    urls = [f"{base}/ok/a.jpg", f"{base}/ok/b.png", f"{base}/flaky.jpg", f"{base}/missing.jpg",
            f"{base}/slow.jpg", f"{base}/html.jpg", None]
    ids = ["A1", "B/2", "C3", "D4", "E5", "F6", "G7"]
    items = pd.DataFrame({"item": np.arange(7), "item_id": ids, "text": "", "image": None, "image_url": urls})
    inter = pd.DataFrame({"user": [0] * 7, "item": np.arange(7), "split": [0] * 7})
    users = pd.DataFrame({"user": [0], "user_id": ["u"]})
    return write_prepared(tmp_path / "d", inter, items, users, name="t", source="test", modes={},
                          params={}, input_checksum="x", extra={"image_root": "images"})


def test_download_retries_failures_report_and_resume(tmp_path, server):
    d = _dataset(tmp_path, server)
    cfg = DownloadConfig(dataset=str(d), workers=4, timeout=0.3, retries=2, backoff=0.01)
    rep = download_images(cfg)
    assert (rep["ok"], rep["present"], rep["failed"]) == (3, 0, 3)
    assert Handler.hits["/flaky.jpg"] == 3 and Handler.hits["/missing.jpg"] == 1   # 404 is not retried
    assert Handler.hits["/slow.jpg"] == 3                                          # timeouts are
    fails = json.loads((d / "image_failures.json").read_text())
    assert {f["item_id"]: f["error"] for f in fails["failures"]} == {
        "D4": "HTTP 404", "E5": fails["failures"][1]["error"], "F6": "response is not an image"}
    assert "timed out" in fails["failures"][1]["error"].lower() or "timeout" in fails["failures"][1]["error"].lower()
    ds = load_prepared(d)
    assert ds.items.image.tolist()[:3] == ["A1/A1.jpg", "_2/B_2~243b57d580ed.png", "C3/C3.jpg"]  # B/2 is escaped: hashed
    assert ds.items.image.iloc[3:].isna().all()
    assert (d / "images" / "A1" / "A1.jpg").read_bytes() == JPEG
    assert not list((d / "images").rglob(".*tmp*"))                                 # no partial files
    # Resume: the three present files are not fetched again; the slow one now succeeds.
    before = dict(Handler.hits)
    assert main(["download-images", "--dataset", str(d), "--timeout", "3", "--set", "backoff=0.01",
                 "--set", "retries=0"]) == 3
    assert Handler.hits["/ok/a.jpg"] == before["/ok/a.jpg"] and Handler.hits["/flaky.jpg"] == 3
    ds = load_prepared(d)
    assert ds.items.image.notna().sum() == 4
    assert json.loads((d / "image_failures.json").read_text())["failed"] == 2


def test_local_name_is_safe():
    assert local_name("B0/../x", "http://h/p/img.JPEG?x=1") == "_x/B0_.._x~a41f93b0d9c2.jpeg"
    assert local_name("A", "http://h/noext") == "A/A.jpg"


def test_no_urls_is_an_error(tmp_path, capsys):
    items = pd.DataFrame({"item": [0], "item_id": ["a"], "text": [""], "image": [None]})
    write_prepared(tmp_path / "d", pd.DataFrame({"user": [0], "item": [0], "split": [0]}), items,
                   pd.DataFrame({"user": [0], "user_id": ["u"]}), name="t", source="t", modes={}, params={},
                   input_checksum="x")
    assert main(["download-images", "--dataset", str(tmp_path / "d")]) == 1
    assert "no 'image_url' column" in capsys.readouterr().err
