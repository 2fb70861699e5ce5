"""etcd as operators run it (issue 20): TLS only, user/password, three members and failover.

One lab for most of the module: two hosts and a three-member etcd cluster speaking TLS only
(``tether lab up --etcd 3 --etcd-tls``); the daemons get every endpoint and the lab's CA and
client certificate in ``daemon.json``. The auth test builds a small lab of its own (one
etcd without TLS: the certificate's CN would otherwise stand for the user). Tests run in
file order: the member-killing tests come last and restart what they killed.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether.lab.etcdcluster import enable_auth
from tether.lab.lab import Lab, LabHost

from .helpers import docker, unique_lab_name, wait_until
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

SUBNET = "10.78.0.0/24"


def _lab(hosts: list[str], **kw: object) -> Iterator[Lab]:
    if importlib.util.find_spec("tether.__main__") is None:
        pytest.skip("no `python -m tether` yet: cannot start a daemon")
    name = unique_lab_name("c1")
    try:
        yield Lab.up(name, hosts, **kw)  # type: ignore[arg-type]
    finally:
        Lab.destroy(name)


@pytest.fixture(scope="module")
def tlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    for lab in _lab(["host1", "host2"], etcd=3, etcd_tls=True):
        tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
        for h in lab.hosts.values():
            import_alpine(h, tar)
        yield lab


@pytest.fixture(scope="module")
def ov(tlab: Lab) -> str:
    ok(docker(tlab.host("host1"), "network", "create", "-d", "overlay", "--subnet", SUBNET, "ov"))
    return "ov"


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


def networks(h: LabHost) -> set[str]:
    return set(ok(docker(h, "network", "ls", "--format", "{{.Name}}")).split())


def ip_of(h: LabHost, name: str) -> str:
    fmt = "{{.NetworkSettings.Networks.ov.IPAddress}}"
    return ok(docker(h, "inspect", "-f", fmt, name)).strip()


def pings(h: LabHost, container: str, target: str) -> bool:
    r = docker(h, "exec", container, "ping", "-c", "1", "-W", "2", target, timeout=20)
    return r.returncode == 0


def _warnings(lab: Lab, last: int = 25) -> str:
    """The daemons' last warnings and errors (for a failed assertion's message)."""
    out = []
    for h in lab.hosts.values():
        lines = Path(h.daemon_log).read_text(errors="replace").splitlines()
        out += [f"{h.name}: {x[11:300]}" for x in lines if " WARNING " in x or " ERROR " in x]
    return "\n".join(out[-last:])


def set_store_opts(lab: Lab, host: str, opts: dict[str, str]) -> None:
    Path(lab.host(host).config_file).write_text(json.dumps({"cluster-store-opts": opts}))


# ---------------------------------------------------------------------------- TLS


def test_daemons_with_the_lab_certificates_share_the_overlay(tlab: Lab, ov: str) -> None:
    cluster = tlab.etcd_cluster
    assert cluster is not None and cluster.tls and len(cluster.endpoints) == 3
    wait_until(lambda: "ov" in networks(tlab.host("host2")), 10, what="ov on host2")
    log = Path(tlab.host("host1").daemon_log).read_text()
    assert "(TLS, client certificate)" in log


def test_daemon_without_client_certificate_is_refused_naming_tls(tlab: Lab, ov: str) -> None:
    cluster = tlab.etcd_cluster
    assert cluster is not None and cluster.pki is not None
    tlab.add_host("host3", daemon=False)
    try:
        set_store_opts(tlab, "host3", {"kv.cacertfile": cluster.pki.ca})
        tlab.start_daemon("host3")
        h3 = tlab.host("host3")
        r = docker(h3, "network", "create", "-d", "overlay", "nocert", timeout=30)
        assert r.returncode != 0
        assert "TLS: cluster store etcd://198.18.0." in r.stderr
        assert "refused this daemon's client certificate (it sent no certificate" in r.stderr
        wait_until(
            lambda: "refused this daemon's client certificate" in Path(h3.daemon_log).read_text(),
            10,
            what="the TLS error in host3's log",
        )
        # a CA that did not sign etcd's certificate: the handshake fails, named as such
        tlab.stop_daemon("host3")
        set_store_opts(
            tlab, "host3", {**cluster.store_opts(), "kv.cacertfile": cluster.pki.other_ca}
        )
        tlab.start_daemon("host3")
        r = docker(h3, "network", "create", "-d", "overlay", "wrongca", timeout=30)
        assert r.returncode != 0
        assert "TLS handshake with cluster store" in r.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in r.stderr
        # nothing was made by the refused daemons
        assert not {"nocert", "wrongca"} & networks(tlab.host("host1"))
    finally:
        tlab.remove_host("host3")


def test_missing_certificate_file_stops_the_daemon_at_start(tlab: Lab) -> None:
    tlab.add_host("host4", daemon=False)
    try:
        set_store_opts(tlab, "host4", {"kv.cacertfile": "/nonexistent/ca.pem"})
        with pytest.raises(Exception, match=r"kv\.cacertfile=/nonexistent/ca\.pem"):
            tlab.start_daemon("host4", timeout=20)
    finally:
        tlab.remove_host("host4")


# ----------------------------------------------------------------- three members


def _run_many(lab: Lab, names: list[tuple[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    def one(host: str, name: str) -> subprocess.CompletedProcess[str]:
        cmd = ("run", "-d", "--name", name, "--network", "ov", "alpine", "sleep", "600")
        return docker(lab.host(host), *cmd, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda hn: one(*hn), names))


def test_one_member_killed_during_container_starts_fails_nothing(tlab: Lab, ov: str) -> None:
    cluster = tlab.etcd_cluster
    assert cluster is not None
    first = [(h, f"a{h[-1]}{i}") for i in range(3) for h in ("host1", "host2")]
    second = [(h, f"b{h[-1]}{i}") for i in range(3) for h in ("host1", "host2")]
    leader = cluster.leader()
    assert leader is not None
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as bg:
            started = bg.submit(_run_many, tlab, first)
            time.sleep(0.5)  # (not a timed assertion: only lets the first runs get going)
            cluster.kill_member(leader)  # the worst member to lose: an election follows
            results = started.result() + _run_many(tlab, second)
    finally:
        cluster.start_member(leader, wait=False)
    failures = [r.stderr for r in results if r.returncode != 0]
    assert failures == [], _warnings(tlab)
    addresses = [ip_of(tlab.host(h), n) for h, n in first + second]
    assert len(set(addresses)) == len(addresses), addresses
    cluster.wait_healthy(cluster.names, 30)


def test_two_members_killed_global_ops_fail_clearly_data_path_stays(tlab: Lab, ov: str) -> None:
    cluster = tlab.etcd_cluster
    assert cluster is not None
    h1, h2 = tlab.host("host1"), tlab.host("host2")
    target = ip_of(h2, "b20")
    wait_until(lambda: pings(h1, "a10", target), 15, what="a10 -> b20 before the fault")
    cluster.kill_member("etcd1")
    cluster.kill_member("etcd2")
    try:
        r = docker(h1, "network", "create", "-d", "overlay", "during", timeout=60)
        assert r.returncode != 0
        assert "cluster store etcd://198.18.0." in r.stderr and "is unreachable" in r.stderr, (
            r.stderr
        )
        r = docker(h2, "run", "-d", "--name", "during", "--network", "ov", "alpine", "true")
        assert r.returncode != 0 and "cluster store" in r.stderr, r.stderr
        # the data path does not need etcd: existing containers keep talking across hosts
        assert pings(h1, "a10", target)
        assert pings(h2, "b20", ip_of(h1, "a10"))
    finally:
        cluster.start_member("etcd1", wait=False)
        cluster.start_member("etcd2", wait=False)
        cluster.wait_healthy(["etcd1", "etcd2", "etcd3"], 30)
    # everything converges: global operations work again and every host sees them
    wait_until(
        lambda: docker(h1, "network", "create", "-d", "overlay", "after").returncode == 0,
        30,
        interval=1.0,
        what="overlay create after the members returned",
    )
    wait_until(lambda: "after" in networks(h2), 15, what="'after' listed on host2")
    ok(docker(h2, "run", "-d", "--name", "late", "--network", "ov", "alpine", "sleep", "600"))
    late = ip_of(h2, "late")
    wait_until(lambda: pings(h1, "a10", late), 15, what="a10 -> the container run after")
    wait_until(lambda: pings(h1, "a10", "late"), 15, what="a10 -> late by name")
    assert "during" not in networks(h2)


# ---------------------------------------------------------------------- user/password


@pytest.fixture(scope="module")
def alab() -> Iterator[Lab]:
    yield from _lab(["host1"], etcd=True)


def test_user_and_password(alab: Lab) -> None:
    assert alab.underlay_netns is not None and alab.etcd_endpoint is not None
    enable_auth(alab.underlay_netns, alab.etcd_endpoint, "tether", "right-pw")
    h = alab.host("host1")
    alab.restart_daemon("host1")  # no credentials: etcd asks for them
    r = docker(h, "network", "create", "-d", "overlay", "noauth", timeout=30)
    assert r.returncode != 0 and "requires authentication" in r.stderr, r.stderr
    set_store_opts(alab, "host1", {"kv.username": "tether", "kv.password": "wrong"})
    alab.restart_daemon("host1")
    r = docker(h, "network", "create", "-d", "overlay", "badpw", timeout=30)
    assert r.returncode != 0
    assert "refused user 'tether': wrong user name or password" in r.stderr, r.stderr
    set_store_opts(alab, "host1", {"kv.username": "tether", "kv.password": "right-pw"})
    alab.restart_daemon("host1")
    wait_until(
        lambda: docker(h, "network", "create", "-d", "overlay", "authed").returncode == 0,
        15,
        interval=0.5,
        what="overlay create with the right password",
    )
    assert "authed" in networks(h)
    # etcd restarted: its tokens are gone; the daemon authenticates again by itself
    alab.stop_etcd()
    alab.start_etcd()
    wait_until(
        lambda: docker(h, "network", "create", "-d", "overlay", "again").returncode == 0,
        15,
        interval=0.5,
        what="overlay create after etcd restarted",
    )
