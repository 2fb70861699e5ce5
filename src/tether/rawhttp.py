"""One HTTP/1.1 request/answer over a unix socket, without ``http.client``.

Why: importing ``http.client`` pulls in ``email``, ``ssl`` and friends, ~25 ms of a CLI
command's ~95 ms (measured with ``python -X importtime`` and pyinstrument for
``tether network ls``). The CLI's plain requests (whole body in memory, answer read to the
end) need only this: send the request with ``Connection: close``, read the status line and
headers, then the body by ``Content-Length``, by chunks, or to the end of the stream.
Streaming and hijacked requests (logs, attach, exec) still use ``http.client``.
"""

from __future__ import annotations

import _socket  # not socket: its import (enum, selectors) is ~2 ms of a CLI command


class ProtocolError(Exception):
    """The answer was not well-formed HTTP/1.x."""


def exchange(
    path: str,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send one request to the unix socket ``path``; return (status, headers, body).

    Connection errors (``FileNotFoundError``, ``ConnectionRefusedError``, ...) propagate.
    """
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        if timeout is not None:
            sock.settimeout(timeout)
        sock.connect(path)
        lines = [f"{method} {url} HTTP/1.1", "Host: localhost", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (body or b""))
        return _read_answer(sock, method)
    finally:
        sock.close()


class _Reader:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def until(self, sep: bytes) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(sep) :]
                return out
            if not self.fill():
                raise ProtocolError("connection closed in the middle of an answer")

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                raise ProtocolError("connection closed in the middle of a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        while self.fill():
            pass
        out, self.buf = self.buf, b""
        return out


def _read_answer(sock: _socket.socket, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
    r = _Reader(sock)
    while True:
        head = r.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {head[0]!r}")
        status = int(parts[1])
        if status != 100:
            break
    headers: list[tuple[str, str]] = []
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    fields = {k.lower(): v for k, v in headers}
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = r.until(b"\r\n").split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_line!r}") from None
            if size == 0:
                while r.until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return status, headers, bytes(body)
            body += r.exactly(size)
            r.exactly(2)
    if "content-length" in fields:
        try:
            n = int(fields["content-length"])
        except ValueError:
            raise ProtocolError(f"bad Content-Length {fields['content-length']!r}") from None
        return status, headers, r.exactly(n)
    return status, headers, r.rest()
