"""A small Docker Engine API client over a unix socket (what the ``tether`` CLI uses).

Plain requests speak HTTP/1.1 themselves (:mod:`tether.rawhttp`); streams and hijacks use
``http.client``, imported on first use. Nothing heavy is imported at start-up: a CLI
command's budget is well under 100 ms.
Every path is sent under ``/v1.41``. Error answers raise :class:`APIError` with the
daemon's ``message``. ``hijack`` performs the ``Upgrade: tcp`` handshake used by
attach and exec start and returns the raw stream.
"""

from __future__ import annotations

import sys

from tether import jsonlite

# typing, collections.abc and urllib.parse are not imported at run time (~6 ms of a CLI
# command's start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    import socket
    from collections.abc import Iterable, Mapping
    from typing import Any, BinaryIO

__all__ = [
    "DEFAULT_HOST",
    "APIError",
    "Client",
    "ConnectionFailed",
    "HijackedStream",
    "Response",
    "socket_path",
]

DEFAULT_HOST = "unix:///run/tether/tether.sock"
API_PREFIX = "/v1.41"

if TYPE_CHECKING:
    QueryValue = str | int | bool | None
    Query = Mapping[str, QueryValue | list[str]]


class APIError(Exception):
    """The daemon answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"Error response from daemon: {self.message}"


class ConnectionFailed(Exception):
    """The daemon's socket could not be reached."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"Cannot connect to the tether daemon at {host}. "
            f"Is the tether daemon running? ({reason})"
        )


def socket_path(host: str) -> str:
    """Turn ``unix:///path`` (or a bare path) into a socket path."""
    if host.startswith("unix://"):
        return host[len("unix://") :]
    if "://" in host:
        raise ValueError(f"unsupported host {host!r}: only unix:// is supported")
    return host


def _make_conn_class() -> type[http.client.HTTPConnection]:
    import http.client

    class UnixHTTPConnection(http.client.HTTPConnection):
        def __init__(self, path: str, timeout: float | None) -> None:
            super().__init__("localhost", timeout=timeout)
            self.unix_path = path

        def connect(self) -> None:
            import socket

            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if self.timeout is not None:
                sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
            self.sock = sock

    return UnixHTTPConnection


_conn_class: type[http.client.HTTPConnection] | None = None


def _encode_query(query: Query | None) -> str:
    if not query:
        return ""
    pairs: list[tuple[str, str]] = []
    for k, v in query.items():
        if v is None:
            continue
        if isinstance(v, bool):
            pairs.append((k, "1" if v else "0"))
        elif isinstance(v, list):
            pairs.extend((k, x) for x in v)
        else:
            pairs.append((k, str(v)))
    if not pairs:
        return ""
    return "?" + "&".join(quote_plus(k) + "=" + quote_plus(v) for k, v in pairs)


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote_plus(text: str) -> str:
    """``urllib.parse.quote_plus`` (UTF-8, nothing but unreserved characters kept)."""
    out = []
    for b in text.encode():
        if b in _SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


class Response:
    """A finished answer: status, headers and the whole body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return jsonlite.loads(self.body) if self.body else None


class HijackedStream:
    """The raw connection after an attach/exec upgrade.

    Read with :meth:`read` (returns ``b""`` at end), write stdin with
    :meth:`write`, and :meth:`close_write` to signal end of input.
    """

    def __init__(self, sock: socket.socket, reader: BinaryIO) -> None:
        self.sock = sock
        self.reader = reader

    def read(self, n: int = 32768) -> bytes:
        try:
            return self.reader.read1(n)  # type: ignore[attr-defined,no-any-return]
        except (ConnectionResetError, OSError):
            return b""

    def read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.read(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return buf

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        import contextlib
        import socket

        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


class Client:
    """Talks to one daemon. Each call opens its own connection."""

    def __init__(self, host: str = DEFAULT_HOST, timeout: float | None = None) -> None:
        self.host = host
        self.path = socket_path(host)
        self.timeout = timeout

    # -- plumbing
    def _conn(self) -> http.client.HTTPConnection:
        global _conn_class
        if _conn_class is None:
            _conn_class = _make_conn_class()
        return _conn_class(self.path, self.timeout)  # type: ignore[arg-type]

    def _send(
        self,
        method: str,
        path: str,
        query: Query | None,
        body: Any,
        data: bytes | BinaryIO | Iterable[bytes] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = API_PREFIX + path + _encode_query(query)
        hdrs = {"User-Agent": "tether-cli"}
        payload: Any = None
        if body is not None:
            payload = jsonlite.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif data is not None:
            payload = data
            if not isinstance(data, bytes):
                hdrs["Transfer-Encoding"] = "chunked"
        if headers:
            hdrs.update(headers)
        conn = self._conn()
        try:
            if payload is not None and not isinstance(payload, bytes):
                conn.request(method, url, body=payload, headers=hdrs, encode_chunked=True)
            else:
                conn.request(method, url, body=payload, headers=hdrs)
            resp = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError, PermissionError) as e:
            conn.close()
            raise ConnectionFailed(self.host, e.strerror or str(e)) from None
        return conn, resp

    @staticmethod
    def _raise_for(resp: http.client.HTTPResponse, body: bytes) -> None:
        Client._raise_status(resp.status, body)

    @staticmethod
    def _raise_status(status: int, body: bytes) -> None:
        if status < 400:
            return
        message = body.decode(errors="replace").strip()
        try:
            doc = jsonlite.loads(body)
            if isinstance(doc, dict) and "message" in doc:
                message = str(doc["message"])
        except ValueError:
            pass
        raise APIError(status, message or f"status {status}")

    # -- public
    def request(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        body: Any = None,
        data: bytes | BinaryIO | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and read the whole answer; raise APIError on 4xx/5xx."""
        if data is None or isinstance(data, bytes):
            return self._plain(method, path, query, body, data, headers)
        conn, resp = self._send(method, path, query, body, data, headers)
        try:
            raw = resp.read()
        finally:
            conn.close()
        self._raise_for(resp, raw)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)

    def _plain(
        self,
        method: str,
        path: str,
        query: Query | None,
        body: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Response:
        # Without http.client (its import is ~25 ms of a CLI command): see tether.rawhttp.
        from tether import rawhttp

        url = API_PREFIX + path + _encode_query(query)
        hdrs = {"User-Agent": "tether-cli"}
        payload = data
        if body is not None:
            payload = jsonlite.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        try:
            status, hlist, raw = rawhttp.exchange(
                self.path, method, url, hdrs, payload, self.timeout
            )
        except (FileNotFoundError, ConnectionRefusedError, PermissionError) as e:
            raise ConnectionFailed(self.host, e.strerror or str(e)) from None
        self._raise_status(status, raw)
        return Response(status, {k.lower(): v for k, v in hlist}, raw)

    def get(self, path: str, query: Query | None = None) -> Any:
        return self.request("GET", path, query).json()

    def post(self, path: str, query: Query | None = None, body: Any = None) -> Any:
        return self.request("POST", path, query, body).json()

    def delete(self, path: str, query: Query | None = None) -> Any:
        return self.request("DELETE", path, query).json()

    def stream(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        body: Any = None,
        data: bytes | BinaryIO | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        """Send a request and return the open response to read incrementally."""
        conn, resp = self._send(method, path, query, body, data, headers)
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            self._raise_for(resp, raw)
        return resp

    def hijack(self, path: str, query: Query | None = None, body: Any = None) -> HijackedStream:
        """POST with ``Upgrade: tcp`` and return the raw bidirectional stream."""
        conn, resp = self._send(
            "POST", path, query, body, None, {"Connection": "Upgrade", "Upgrade": "tcp"}
        )
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            self._raise_for(resp, raw)
        sock = conn.sock
        reader = resp.fp
        if sock is None or reader is None:
            raise ConnectionFailed(self.host, "connection closed during upgrade")
        # The connection object must not close the socket now that we own it.
        conn.sock = None
        resp.fp = None  # type: ignore[assignment]
        return HijackedStream(sock, reader)

    def ping(self) -> bool:
        try:
            return self.request("GET", "/_ping").body == b"OK"
        except (ConnectionFailed, APIError, OSError):
            return False


def host_from_env(flag: str | None) -> str:
    """The host to use: the ``-H`` flag, else ``TETHER_HOST``, else the default."""
    return flag or _environ("TETHER_HOST") or DEFAULT_HOST


def _environ(name: str) -> str | None:
    """``os.environ.get(name)`` without importing os (~1 ms of the CLI's start-up: os,
    stat, posixpath, _collections_abc), decoded as os.environ decodes it."""
    import posix

    value = posix.environ.get(name.encode())
    return None if value is None else value.decode(sys.getfilesystemencoding(), "surrogateescape")
