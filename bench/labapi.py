"""The Engine API of a lab host's daemon over its unix socket, for bench scripts (stdlib only)."""

from __future__ import annotations

import http.client
import json
import socket

from tether.lab.lab import LabHost


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.unix_path)
        self.sock = s


def api(h: LabHost, method: str, path: str, body: object = None) -> tuple[int, object]:
    """One request to ``h``'s daemon: (status, decoded JSON body or None)."""
    conn = UnixHTTP(h.socket)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw.strip() else None)
    finally:
        conn.close()
