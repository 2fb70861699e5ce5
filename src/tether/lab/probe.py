"""Readiness probes: `GET /_ping` on a daemon's unix socket, HTTP inside a lab namespace."""

from __future__ import annotations

import http.client
import socket
import subprocess

from tether.lab import system


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def unix_get(path: str, url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``url`` over the unix socket ``path``: (status, body). Raises OSError."""
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", url)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except http.client.HTTPException as exc:
        raise OSError(str(exc)) from exc
    finally:
        conn.close()


def daemon_ready(socket_path: str, timeout: float = 2.0) -> bool:
    """True when ``GET /_ping`` on the socket answers 200 ``OK``."""
    try:
        status, body = unix_get(socket_path, "/_ping", timeout)
    except OSError:
        return False
    return status == 200 and body.strip() == b"OK"


def http_get_in_netns(netns: str, url: str, timeout: float = 2.0) -> tuple[int, str] | None:
    """GET ``url`` from inside ``netns`` (with curl): (status, body), or None on failure."""
    argv = system.nsenter_argv(
        netns,
        ["curl", "-s", "--max-time", str(timeout), "-w", "\n%{http_code}", url],
    )
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    body, _, code = proc.stdout.rpartition("\n")
    try:
        return int(code), body
    except ValueError:
        return None
