"""``attach?logs=1&stream=0`` after ``wait`` (issue 17, docker-py's ``test_attach_no_stream``).

docker-py reads the 101's head through a buffered reader, then the raw socket: bytes that
arrive with the head are lost. The daemon sends the first output only once the client has
read the head, so a slow client gets the log too.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tether.lab.lab import LabHost

from .portlab import import_image, ok

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    import_image(host1, Path(tmp_path_factory.mktemp("img")))
    return host1


def test_attach_no_stream_gets_the_log(h: LabHost) -> None:
    import docker

    api = docker.APIClient(base_url=f"unix://{h.socket}", version="1.41")
    for _ in range(10):  # docker-py's test_attach_no_stream, as it is
        cid = api.create_container("alpine", "echo hello")["Id"]
        api.start(cid)
        api.wait(cid, condition="not-running")
        assert api.attach(cid, stream=False, logs=True) == b"hello\n"
        api.remove_container(cid)


def test_a_client_slow_to_read_the_head_loses_nothing(h: LabHost) -> None:
    cid = ok(h, "run", "-d", "alpine", "echo", "hello")
    ok(h, "wait", cid)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(h.socket))
    s.sendall(f"POST /v1.41/containers/{cid}/attach?logs=1&stdout=1&stream=0 HTTP/1.1\r\n"
              "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode())  # fmt: skip
    time.sleep(0.3)  # the daemon is ready long before the client reads anything
    buffered = s.makefile("rb")  # as http.client: the head through a buffered reader
    while buffered.readline() not in (b"\r\n", b""):
        pass
    rest = b""  # then the raw socket, as docker-py: what the buffer took is lost
    while chunk := s.recv(4096):
        rest += chunk
    s.close()
    assert rest == b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"
