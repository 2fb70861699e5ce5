"""Image verbs, host selection and connection errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_fakedaemon import FakeDaemon
from click.testing import CliRunner, Result

from tether.cli.images import split_reference
from tether.cli.main import LazyGroup, cli


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    d = FakeDaemon()
    yield d
    d.close()


def run(d: FakeDaemon, *args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["-H", d.host, *args], input=stdin)


def test_import_streams_tarball_with_changes(daemon: FakeDaemon, tmp_path: Path) -> None:
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(b"x" * 100_000)
    status = json.dumps({"status": "sha256:" + "ab" * 32}).encode() + b"\r\n"
    daemon.route("POST", "/images/create", (200, status))
    r = run(daemon, "import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV A=1", str(tar), "alpine:latest")
    assert r.exit_code == 0, r.output
    assert r.stdout == "sha256:" + "ab" * 32 + "\n"
    req = daemon.find("POST", "/images/create")[0]
    assert req.raw == b"x" * 100_000
    assert req.query["changes"] == ['CMD ["/bin/sh"]', "ENV A=1"]
    assert (req.q("fromSrc"), req.q("repo"), req.q("tag")) == ("-", "alpine", "latest")


def test_image_import_from_stdin_and_error(daemon: FakeDaemon) -> None:
    daemon.route("POST", "/images/create", (200, b'{"error":"bad tar","errorDetail":{}}\n'))
    r = run(daemon, "image", "import", "-", "x", stdin=b"data")
    assert (r.exit_code, r.stderr) == (1, "bad tar\n")
    assert daemon.find("POST", "/images/create")[0].raw == b"data"


def test_load(daemon: FakeDaemon, tmp_path: Path) -> None:
    tar = tmp_path / "img.tar"
    tar.write_bytes(b"tar!")
    daemon.route("POST", "/images/load", (200, b'{"stream":"Loaded image: alpine:latest\\n"}\n'))
    r = run(daemon, "load", "-i", str(tar))
    assert (r.exit_code, r.stdout) == (0, "Loaded image: alpine:latest\n")
    assert daemon.find("POST", "/images/load")[0].raw == b"tar!"


def test_images_table_and_rmi(daemon: FakeDaemon) -> None:
    import time

    daemon.route(
        "GET",
        "/images/json",
        (
            200,
            [
                {
                    "Id": "sha256:" + "c0ffee" * 10 + "abcd",
                    "RepoTags": ["alpine:latest"],
                    "Created": int(time.time()) - 3 * 86400,
                    "Size": 1_240_000,
                }
            ],
        ),
    )
    r = run(daemon, "images")
    assert r.stdout == (
        "REPOSITORY   TAG       IMAGE ID       CREATED      SIZE\n"
        "alpine       latest    c0ffeec0ffee   3 days ago   1.24MB\n"
    )
    daemon.route(
        "DELETE",
        "/images/alpine",
        (200, [{"Untagged": "alpine:latest"}, {"Deleted": "sha256:abc"}]),
    )
    r = run(daemon, "rmi", "alpine")
    assert r.stdout == "Untagged: alpine:latest\nDeleted: sha256:abc\n"


def test_split_reference() -> None:
    assert split_reference("alpine") == ("alpine", "")
    assert split_reference("localhost:5000/a/b:1.0") == ("localhost:5000/a/b", "1.0")
    assert split_reference("localhost:5000/a") == ("localhost:5000/a", "")


def test_tether_host_env(daemon: FakeDaemon) -> None:
    daemon.route("GET", "/networks", (200, []))
    r = CliRunner().invoke(cli, ["network", "ls", "-q"], env={"TETHER_HOST": daemon.host})
    assert r.exit_code == 0
    assert len(daemon.find("GET", "/networks")) == 1


def test_daemon_unreachable(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/nothing.sock"
    r = CliRunner().invoke(cli, ["-H", host, "network", "ls"])
    assert r.exit_code == 1
    assert r.stderr.startswith(f"Cannot connect to the tether daemon at {host}.")


def test_lab_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    import tether.cli.commands as m

    monkeypatch.setitem(m.COMMANDS, "lab", "tether.no_such_module:lab")
    group = LazyGroup()
    assert group.get_command(None, "lab") is None  # type: ignore[arg-type]
    assert "network" in group.list_commands(None)  # type: ignore[arg-type]
    assert "lab" not in group.list_commands(None)  # type: ignore[arg-type]


def test_version_without_daemon(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["-H", f"unix://{tmp_path}/x.sock", "version"])
    assert r.exit_code == 1
    assert r.stdout.startswith("Client:\n Version:           ")
