"""``StdinOnce`` (issue 16): whether an attached client's EOF closes the container's stdin.

Docker: with StdinOnce (``docker run -i`` in the foreground) and no TTY, the client's EOF
closes the container's stdin; otherwise (``docker run -d -i``, docker-py's
``stdin_open=True``) stdin stays open and only that attach ends.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tether.lab.lab import LabHost

from .helpers import docker
from .portlab import clean_host, import_image, ok

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    import_image(host1, Path(tmp_path_factory.mktemp("img")))
    return host1


@pytest.fixture(autouse=True)
def _clean(h: LabHost) -> None:
    clean_host(h)


def running(h: LabHost, name: str) -> bool:
    return bool(json.loads(ok(h, "inspect", name))[0]["State"]["Running"])


def test_run_i_piped_cat_ends_with_its_input(h: LabHost) -> None:
    r = docker(h, "run", "-i", "--name", "once", "alpine", "cat", input="hi\n", timeout=30)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    shown = json.loads(ok(h, "inspect", "once"))[0]["Config"]
    assert (shown["OpenStdin"], shown["StdinOnce"]) == (True, True)


def test_without_stdin_once_stdin_stays_open_across_attaches(h: LabHost) -> None:
    """``docker run -d -i``: each attach's EOF ends that attach only; cat reads on. (The
    docker CLI's ``attach`` then waits for the container's exit, on Docker too: the API is
    driven directly here.)"""
    cid = ok(h, "run", "-d", "-i", "--name", "keep", "alpine", "cat")
    shown = json.loads(ok(h, "inspect", "keep"))[0]["Config"]
    assert (shown["OpenStdin"], shown["StdinOnce"]) == (True, False)
    for word in (b"one", b"two"):
        s = _raw_attach(h, cid)
        s.sendall(word + b"\n")
        assert s.recv(4096) == frame(word + b"\n")
        s.shutdown(socket.SHUT_WR)
        assert _read_all(s) == b""  # the attach ended
        s.close()
        assert running(h, "keep")


def frame(data: bytes) -> bytes:
    return b"\x01\x00\x00\x00" + len(data).to_bytes(4, "big") + data


def _raw_attach(h: LabHost, cid: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(str(h.socket))
    s.sendall(f"POST /v1.41/containers/{cid}/attach?stdin=1&stdout=1&stream=1 HTTP/1.1\r\n"
              "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_docker_py_attach_socket_semantics(h: LabHost) -> None:
    """An attach socket that half-closes: with StdinOnce, cat gets EOF and exits 0; without,
    the attach ends (the output so far, then EOF) and cat keeps running."""
    import docker as dockerpy

    api = dockerpy.APIClient(base_url=f"unix://{h.socket}", version="1.41")
    for once in (True, False):
        body = {"Image": "alpine", "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": once,
                "AttachStdin": True, "AttachStdout": True}  # fmt: skip
        cid = api._result(api._post_json(api._url("/containers/create"), data=body), True)["Id"]
        s = _raw_attach(h, cid)
        api.start(cid)
        s.sendall(b"hi\n")
        if once:  # the EOF closes cat's stdin: the output, then the end as cat exits
            s.shutdown(socket.SHUT_WR)
            assert _read_all(s) == frame(b"hi\n")
            assert api.wait(cid, timeout=20)["StatusCode"] == 0
        else:  # the EOF ends this attach only
            assert s.recv(4096) == frame(b"hi\n")
            s.shutdown(socket.SHUT_WR)
            assert _read_all(s) == b""
            assert api.inspect_container(cid)["State"]["Running"]
        s.close()
        api.remove_container(cid, force=True)


def test_tty_stdin_survives_an_attach_leaving(h: LabHost) -> None:
    """A TTY container's stdin is never closed by an attach's EOF (Docker's rule): a later
    attach still talks to cat."""
    ok(h, "run", "-d", "-i", "-t", "--name", "tty", "alpine", "cat")
    cid = ok(h, "inspect", "-f", "{{.Id}}", "tty")
    s = _raw_attach(h, cid)
    s.shutdown(socket.SHUT_WR)
    _read_all(s)  # the attach ends
    s.close()
    s = _raw_attach(h, cid)
    s.sendall(b"again\n")
    got = b""
    while got.count(b"again") < 2:  # the TTY's echo, then cat's
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    s.close()
    assert running(h, "tty")
