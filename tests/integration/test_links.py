"""Legacy ``--link`` through the real docker CLI: hosts lines, env vars, errors, and link
aliases on user-defined networks (DNS names only the linking container sees)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .dnslab import DnsLab, dns_lab
from .helpers import LabFactory


@pytest.fixture(scope="module")
def d(module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    yield from dns_lab(module_lab_factory, tmp_path_factory.mktemp("links"))


@pytest.fixture(scope="module")
def db(d: DnsLab) -> str:
    d.run("db", "--expose", "3306", "-e", "MYSQL_PASSWORD=pw")
    return d.docker("inspect", "-f", "{{.Id}}", "db").stdout.strip()


def test_link_hosts_line_and_one_way(d: DnsLab, db: str) -> None:
    d.run("app", "--link", "db:mysql")
    db_ip = d.ip("db", "bridge")
    app_ip = d.ip("app", "bridge")
    app_id = d.docker("inspect", "-f", "{{.Id}}", "app").stdout.strip()
    hosts = d.exec("app", "cat", "/etc/hosts").stdout
    lines = hosts.splitlines()
    assert lines[:6] == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    assert lines[6:] == [f"{db_ip}\tmysql {db[:12]} db", f"{app_ip}\t{app_id[:12]}"]
    # inspect rebuilds HostConfig.Links from the link as Docker does
    links = d.docker("inspect", "-f", "{{json .HostConfig.Links}}", "app").stdout.strip()
    assert links == '["/db:/app/mysql"]'
    db_hosts = d.exec("db", "cat", "/etc/hosts").stdout
    assert "app" not in db_hosts and app_ip not in db_hosts  # one-way
    r = d.exec("app", "ping", "-c1", "-W2", "mysql")
    assert r.returncode == 0 and f"PING mysql ({db_ip})" in r.stdout, r.stdout + r.stderr


def test_link_env(d: DnsLab, db: str) -> None:
    d.run("app2", "--link", "db:mysql")
    db_ip = d.ip("db", "bridge")
    env = set(d.exec("app2", "env").stdout.splitlines())
    want = {
        "MYSQL_NAME=/app2/mysql",
        f"MYSQL_PORT=tcp://{db_ip}:3306",
        f"MYSQL_PORT_3306_TCP=tcp://{db_ip}:3306",
        f"MYSQL_PORT_3306_TCP_ADDR={db_ip}",
        "MYSQL_PORT_3306_TCP_PORT=3306",
        "MYSQL_PORT_3306_TCP_PROTO=tcp",
        "MYSQL_ENV_MYSQL_PASSWORD=pw",
    }
    assert want <= env
    assert not any(e.startswith("MYSQL_ENV_PATH=") for e in env)
    assert not any(e.startswith("APP2_") for e in d.exec("db", "env").stdout.splitlines())


def test_link_errors(d: DnsLab, db: str) -> None:
    r = d.docker("run", "--rm", "--link", "nosuch:x", "alpine", "true", check=False)
    assert r.returncode != 0
    assert "could not get container for nosuch: No such container: nosuch" in r.stderr
    d.docker("network", "create", "ln1")
    d.run("web", "--network", "ln1")
    r = d.docker("run", "--rm", "--link", "web:w", "alpine", "true", check=False)
    assert "Cannot link to /web, as it does not belong to the default network" in r.stderr
    d.run("db2")
    d.docker("stop", "-t0", "db2")
    r = d.docker("run", "--name", "new", "--link", "db2:alias", "alpine", "true", check=False)
    assert r.returncode != 0
    assert "Cannot link to a non running container: /db2 AS /new/alias" in r.stderr


def test_link_alias_on_user_network_is_scoped(d: DnsLab) -> None:
    d.docker("network", "create", "ln2")
    d.run("svc", "--network", "ln2")
    d.run("linker", "--network", "ln2", "--link", "svc:backend")
    d.run("bystander", "--network", "ln2")
    svc_ip = d.ip("svc", "ln2")
    assert d.a("linker", "backend") == [svc_ip]
    r = d.exec("linker", "nslookup", "backend")
    assert r.returncode == 0 and f"Address: {svc_ip}" in r.stdout, r.stdout + r.stderr
    assert d.query("bystander", "backend")["rcode"] == "NXDOMAIN"
    assert d.a("bystander", "svc") == [svc_ip]
    # no hosts line and no link variables on user networks (Docker)
    assert "backend" not in d.exec("linker", "cat", "/etc/hosts").stdout
    assert not any(e.startswith("BACKEND_") for e in d.exec("linker", "env").stdout.splitlines())
    # the linked container is untouched
    assert d.query("svc", "backend")["rcode"] == "NXDOMAIN"


def test_link_alias_on_user_network_follows_the_name(d: DnsLab) -> None:
    """Docker resolves a link alias to the target's name: a later container answers."""
    d.docker("network", "create", "ln3")
    d.run("early", "--network", "ln3", "--link", "later:lt")
    assert d.query("early", "lt")["rcode"] == "NXDOMAIN"
    d.run("later", "--network", "ln3")
    assert d.a("early", "lt") == [d.ip("later", "ln3")]
