"""One bounded HTTP(S) GET: what ``mrs download-images`` trusts a remote server with.

- Only ``http`` and ``https`` URLs are fetched, redirects included (never ``file://``, ``ftp://``).
- ``timeout`` bounds the *whole* request (connect, headers, body, redirects): a watchdog shuts the
  socket down at the deadline, so a server dripping one byte a second cannot hold a worker.
- At most ``max_bytes`` are read; a body shorter than its ``Content-Length`` is an error, not a
  file; a cut chunked stream or a garbled status line is an error, never a traceback.

Every failure is a :class:`FetchError` with a one-line reason and whether a retry may help.
"""
from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urljoin, urlsplit

SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
READ_BLOCK = 1 << 16


class FetchError(Exception):
    """A failed download: ``str(e)`` is the reason; ``retryable`` says whether to try again."""

    def __init__(self, reason: str, retryable: bool = False):
        super().__init__(reason)
        self.retryable = retryable


def http_get(url: str, timeout: float, max_bytes: int, user_agent: str) -> bytes:
    """The body of ``url`` (after at most ``MAX_REDIRECTS`` http(s) redirects), within ``timeout``
    seconds in total; ``FetchError`` otherwise."""
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsed lazily: a port like ":x" raises only here
        except ValueError as e:  # ``http://[::1``, a bad port
            raise FetchError(f"bad URL ({e})") from None
        if parts.scheme.lower() not in SCHEMES:
            raise FetchError(f"unsupported URL scheme {parts.scheme or '(none)'!r}: only http and https "
                             f"are fetched")
        if not parts.hostname:
            raise FetchError("URL has no host")
        status, location, body = _get_once(parts, deadline, timeout, max_bytes, user_agent)
        if location is None:
            return body
        url = urljoin(url, location)
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _get_once(parts, deadline: float, timeout: float, max_bytes: int, user_agent: str
              ) -> tuple[int, str | None, bytes]:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(f"timed out: the whole request took more than {timeout:g} s", retryable=True)
    cls = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    try:
        conn = cls(parts.hostname, parts.port, timeout=remaining)
    except (ValueError, http.client.InvalidURL) as e:  # a malformed port, say
        raise FetchError(f"bad URL ({e})") from None
    expired = threading.Event()
    opened: list[socket.socket] = []   # the socket, kept: http.client drops ``conn.sock`` as soon as a
    # response will close the connection (HTTP/1.0, ``Connection: close``) while the body still
    # comes through it, and the watchdog must still be able to shut it

    def watchdog() -> None:
        # socket timeouts bound each recv, not their sum: this bounds the whole request
        expired.set()
        for sock in (*opened, conn.sock):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    timer = threading.Timer(remaining, watchdog)
    timer.daemon = True
    timer.start()
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.connect()
        opened.append(conn.sock)
        if expired.is_set():  # the deadline passed while connecting, before the socket was known
            raise TimeoutError
        conn.request("GET", path, headers={"User-Agent": user_agent, "Accept-Encoding": "identity"})
        resp = conn.getresponse()
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            return resp.status, resp.getheader("Location"), b""
        if resp.status != 200:
            raise FetchError(f"HTTP {resp.status}", retryable=resp.status >= 500 or resp.status in (408, 429))
        length = _content_length(resp)
        if length is not None and length > max_bytes:
            raise FetchError(f"larger than max_bytes={max_bytes} (Content-Length {length})")
        chunks, n = [], 0
        while True:
            block = resp.read(READ_BLOCK)
            if not block:
                break
            chunks.append(block)
            n += len(block)
            if n > max_bytes:
                raise FetchError(f"larger than max_bytes={max_bytes}")
        if expired.is_set():
            raise FetchError(f"timed out: the whole request took more than {timeout:g} s", retryable=True)
        if length is not None and n != length:
            raise FetchError(f"truncated body: {n} of {length} bytes", retryable=True)
        return resp.status, None, b"".join(chunks)
    except FetchError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as e:
        if expired.is_set():
            raise FetchError(f"timed out: the whole request took more than {timeout:g} s", retryable=True) from None
        raise FetchError(_describe(e), retryable=True) from None
    finally:
        timer.cancel()
        conn.close()


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    raw = resp.getheader("Content-Length")
    if raw is None or resp.getheader("Transfer-Encoding", "").lower() == "chunked":
        return None
    try:
        return int(raw)
    except ValueError:
        raise FetchError(f"bad Content-Length {raw[:40]!r}", retryable=True) from None


def _describe(e: BaseException) -> str:
    if isinstance(e, http.client.IncompleteRead):
        return f"IncompleteRead: connection closed after {len(e.partial)} bytes"
    if isinstance(e, TimeoutError | socket.timeout):
        return "timed out waiting for the server"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__
