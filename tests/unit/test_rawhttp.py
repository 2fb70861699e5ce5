"""tether.rawhttp: one request/answer over a unix socket, against a scripted server."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator

import pytest

from tether import rawhttp
from tether.client import APIError, Client, ConnectionFailed


class Server:
    """Accepts one connection, records the request, sends ``answer`` (then closes)."""

    def __init__(self, answer: bytes, close: bool = True) -> None:
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "s.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.answer = answer
        self.close = close
        self.request = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(5)
        while b"\r\n\r\n" not in self.request:
            self.request += conn.recv(4096)
        head, _, rest = self.request.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
                while len(rest) < n:
                    rest += conn.recv(4096)
                self.request = head + b"\r\n\r\n" + rest
        self.keep = conn
        conn.sendall(self.answer)
        if self.close:
            conn.close()

    def stop(self) -> None:
        self.thread.join(5)
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def serve() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for s in made:
        s.stop()


def start(made: list[Server], answer: bytes, close: bool = True) -> Server:
    s = Server(answer, close)
    made.append(s)
    return s


def test_content_length_body_without_waiting_for_close(serve: list[Server]) -> None:
    s = start(serve, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello", close=False)
    status, headers, body = rawhttp.exchange(s.path, "GET", "/v1.41/x?a=1", {}, None, 5)
    assert (status, body) == (200, b"hello")
    assert ("X-A", "b") in headers
    assert s.request.startswith(b"GET /v1.41/x?a=1 HTTP/1.1\r\n")
    assert b"Connection: close\r\n" in s.request
    s.thread.join(5)
    s.keep.close()


def test_chunked_body_and_post_payload(serve: list[Server]) -> None:
    s = start(
        serve,
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n",
    )
    status, _, body = rawhttp.exchange(s.path, "POST", "/p", {"A": "b"}, b'{"k":1}', 5)
    assert (status, body) == (201, b"abcdefg")
    assert s.request.endswith(b'Content-Length: 7\r\n\r\n{"k":1}')
    assert b"A: b\r\n" in s.request


def test_body_to_end_of_stream_and_100_continue(serve: list[Server]) -> None:
    s = start(serve, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nall of it")
    assert rawhttp.exchange(s.path, "GET", "/", {}, None, 5)[::2] == (200, b"all of it")


def test_no_body_statuses_and_bad_answers(serve: list[Server]) -> None:
    s = start(serve, b"HTTP/1.1 204 No Content\r\n\r\n")
    assert rawhttp.exchange(s.path, "DELETE", "/", {}, None, 5)[::2] == (204, b"")
    s = start(serve, b"SMTP ready\r\n\r\n")
    with pytest.raises(rawhttp.ProtocolError):
        rawhttp.exchange(s.path, "GET", "/", {}, None, 5)
    s = start(serve, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(rawhttp.ProtocolError):
        rawhttp.exchange(s.path, "GET", "/", {}, None, 5)


def test_client_request_uses_it_for_errors_and_json(serve: list[Server]) -> None:
    s = start(
        serve,
        b'HTTP/1.1 404 Not Found\r\nContent-Length: 30\r\n\r\n{"message": "network x gone"} ',
    )
    with pytest.raises(APIError) as err:
        Client(f"unix://{s.path}", timeout=5).request("GET", "/networks/x")
    assert (err.value.status, err.value.message) == (404, "network x gone")
    s = start(serve, b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[{"a":1}]')
    assert Client(f"unix://{s.path}", timeout=5).get("/networks") == [{"a": 1}]


def test_client_connection_failure() -> None:
    with pytest.raises(ConnectionFailed):
        Client("unix:///nonexistent/tether.sock").get("/networks")
