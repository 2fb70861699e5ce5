"""A fake Docker Engine API daemon on a unix socket, for the CLI tests.

Routes are ``(METHOD, regex)`` -> handler(request) returning ``(status, json_body)``,
or a :class:`Hijack` to answer ``101 UPGRADED`` and then talk raw bytes.
Every request is recorded (method, path without the version prefix, query, body).
"""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    raw: bytes
    headers: dict[str, str]

    def q(self, name: str) -> str | None:
        v = self.query.get(name)
        return v[0] if v else None


@dataclass
class Hijack:
    """Answer with an upgrade, send ``output`` chunks, collect stdin until EOF if asked."""

    output: list[bytes]
    read_stdin: bool = False
    stdin: bytearray = field(default_factory=bytearray)


Handler = Callable[[Request], "tuple[int, Any] | Hijack"]


class FakeDaemon:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tether-cli-test-")
        self.path = os.path.join(self.dir, "d.sock")
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self.errors: list[str] = []
        daemon = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                path = re.sub(r"^/v1\.\d+", "", url.path)
                raw = b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        raw += self.rfile.read(size)
                        self.rfile.readline()
                elif self.headers.get("Content-Length"):
                    raw = self.rfile.read(int(self.headers["Content-Length"]))
                body: Any = None
                if raw and "json" in self.headers.get("Content-Type", ""):
                    body = json.loads(raw)
                req = Request(
                    self.command,
                    path,
                    urllib.parse.parse_qs(url.query, keep_blank_values=True),
                    body,
                    raw,
                    {k.lower(): v for k, v in self.headers.items()},
                )
                daemon.requests.append(req)
                for method, rx, fn in daemon.routes:
                    if method == self.command and rx.fullmatch(path):
                        result = fn(req)
                        break
                else:
                    result = (404, {"message": f"page not found: {path}"})
                if isinstance(result, Hijack):
                    self._hijack(result)
                    return
                status, payload = result
                data = (
                    payload
                    if isinstance(payload, bytes)
                    else json.dumps(payload).encode()
                    if payload is not None
                    else b""
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            def _hijack(self, h: Hijack) -> None:
                self.wfile.write(
                    b"HTTP/1.1 101 UPGRADED\r\n"
                    b"Content-Type: application/vnd.docker.raw-stream\r\n"
                    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                )
                self.wfile.flush()
                if h.read_stdin:
                    while True:
                        chunk = self.connection.recv(4096)
                        if not chunk:
                            break
                        h.stdin.extend(chunk)
                for chunk in h.output:
                    self.wfile.write(chunk)
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

            do_GET = do_POST = do_DELETE = do_PUT = _handle

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                import traceback

                daemon.errors.append(traceback.format_exc())

        self.server = Server(self.path, H)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def route(self, method: str, pattern: str, fn: Handler | tuple[int, Any]) -> None:
        handler: Handler = fn if callable(fn) else (lambda _r, v=fn: v)
        self.routes.insert(0, (method, re.compile(pattern), handler))

    def find(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data
