"""Issue 23 §8: ``mrs download-images`` gives every item id its own file, lists a malformed URL
as one failure and goes on, and bounds a slow-drip HTTP/1.0 (``Connection: close``) server by
``--timeout`` (loopback server only)."""
from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
from PIL import Image

from mrs.data.prepared import load_prepared
from mrs.prep.images import local_name
from tests.http_server import threaded_http_server
from tests.reliability.test_downloads import JPEG, _dataset, _jpeg, _run


class Pictures(BaseHTTPRequestHandler):
    """``/red.jpg`` and ``/blue.jpg`` are different pictures; ``/drip.jpg`` drips on HTTP/1.0."""

    protocol_version = "HTTP/1.0"          # the response ends with the connection (will_close)
    BODIES = {"/red.jpg": _jpeg(48), "/blue.jpg": _jpeg(32)}

    def do_GET(self):  # noqa: N802
        try:
            if self.path in self.BODIES:
                body = self.BODIES[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/drip.jpg":  # one byte every 0.25 s for ~30 s, Connection: close
                self.send_response(200)
                self.send_header("Content-Length", str(len(JPEG)))
                self.send_header("Connection", "close")
                self.end_headers()
                for b in JPEG[:120]:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.25)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *a):
        pass


@pytest.fixture
def base():
    with threaded_http_server(Pictures) as url:
        yield url


def test_ids_that_sanitise_alike_get_their_own_pictures(tmp_path, base):
    ids = ["shirt/red", "shirt_red", "shirt red"]
    d = _dataset(tmp_path / "d", ids, [f"{base}/red.jpg", f"{base}/blue.jpg", f"{base}/blue.jpg"])
    rep, errors, _ = _run(d)
    assert rep["ok"] == 3 and not errors
    items = load_prepared(d).items.set_index("item_id")
    assert items.image.nunique() == 3
    sizes = {i: Image.open(d / "images" / items.image[i]).size for i in ids}
    assert sizes == {"shirt/red": (48, 48), "shirt_red": (32, 32), "shirt red": (32, 32)}


def test_safe_ids_keep_their_old_file_names(tmp_path):
    # files downloaded before the names became injective stay usable for ids that need no escaping
    assert local_name("B00ABC", "http://x/a.JPG") == "BC/B00ABC.jpg"
    assert local_name("0108775015", "http://x/a") == "15/0108775015.jpg"
    a, b = local_name("shirt/red", "http://x/a.jpg"), local_name("shirt_red", "http://x/a.jpg")
    assert b == "ed/shirt_red.jpg" and a != b and a.startswith("ed/shirt_red~")


def test_an_old_shared_file_is_fetched_again(tmp_path, base):
    # before: "shirt/red" and "shirt_red" both used ed/shirt_red.jpg; whose picture it holds is unknown
    d = _dataset(tmp_path / "d", ["shirt/red", "shirt_red"], [f"{base}/red.jpg", f"{base}/blue.jpg"])
    (d / "images" / "ed").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / "images" / "ed" / "shirt_red.jpg")
    rep, errors, _ = _run(d)
    assert rep["ok"] == 2 and rep["present"] == 0 and not errors
    assert Image.open(d / "images" / "ed" / "shirt_red.jpg").size == (32, 32)


def test_a_malformed_url_is_one_listed_failure_and_the_run_goes_on(tmp_path, base):
    d = _dataset(tmp_path / "d", ["bad", "ok"], ["http://[::1", f"{base}/red.jpg"])
    rep, errors, _ = _run(d)
    assert rep["ok"] == 1 and rep["failed"] == 1
    assert errors == {"bad": "bad URL (Invalid IPv6 URL)"}


def test_slow_drip_on_http_1_0_is_bounded_by_the_total_timeout(tmp_path, base):
    d = _dataset(tmp_path / "d", ["drip", "ok"], [f"{base}/drip.jpg", f"{base}/red.jpg"])
    rep, errors, took = _run(d, timeout=1.0, retries=0, workers=2, limit_s=20)
    assert errors == {"drip": "timed out: the whole request took more than 1 s"}
    assert rep["ok"] == 1 and took < 6
