"""Containers through the real docker CLI against a tether daemon in a lab host.

One lab per module with the busybox image imported once as ``alpine:latest``. The daemon
kill -9 test comes last. Reference texts: ``shared/reference/docker-20.10-transcript.txt``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import (
    container_inspect,
    docker,
    docker_fails,
    docker_ok,
    in_host,
    mounts_mentioning,
    pid_alive,
    wait_until,
)
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

HEX64 = re.compile(r"^[0-9a-f]{64}$")
A = "alpine"


ok = docker_ok


def fails(host: LabHost, *args: str, code: int = 125) -> str:
    return docker_fails(host, *args, code=code)


cinspect = container_inspect


def ps_names(host: LabHost) -> list[str]:
    return ok(host, "ps", "-a", "--format", "{{.Names}}").split()


def links(host: LabHost) -> list[str]:
    out = in_host(host, "ip", "-br", "link", check=True).stdout
    return [line.split()[0].split("@")[0] for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    ok(
        host1,
        "network",
        "create",
        "-d",
        "bridge",
        "--subnet",
        "172.28.0.0/16",
        "--gateway",
        "172.28.0.254",
        "jasonyin2020",
    )
    ok(
        host1,
        *("network", "create", "-d", "bridge", "--gateway", "172.26.1.254"),
        *("--subnet", "172.26.1.0/24", "--ip-range", "172.26.1.100/28", "oldboyedu2021"),
    )
    return host1


# ---------------------------------------------------------------- the seed's commands


def test_seed_run_ip_range_and_inspect(h: LabHost) -> None:
    cid = ok(h, "container", "run", "-itd", "--network", "oldboyedu2021", "--name", "r1", A).strip()
    assert HEX64.match(cid)
    out = ok(
        h,
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}",
        "r1",
    )
    assert out.strip() == "172.26.1.96 172.26.1.254"
    out = ok(h, "inspect", "--format", "{{.NetworkSettings.Networks}}", "r1")
    assert re.fullmatch(r"map\[oldboyedu2021:0x[0-9a-f]+\]", out.strip()), out
    ps = ok(h, "ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()
    assert any(line.startswith("r1 Up") for line in ps), ps
    assert ok(h, "exec", "r1", "hostname").strip() == cid[:12]
    addrs = ok(h, "exec", "r1", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
    assert "172.26.1.96/24" in addrs
    assert "02:42:ac:1a:01:60" in ok(h, "exec", "r1", "cat", "/sys/class/net/eth0/address")
    net = json.loads(ok(h, "network", "inspect", "oldboyedu2021"))[0]
    ep = net["Containers"][cid]
    assert ep["Name"] == "r1" and ep["IPv4Address"] == "172.26.1.96/24"
    assert ep["MacAddress"] == "02:42:ac:1a:01:60" and HEX64.match(ep["EndpointID"])
    # a second one takes the next address of the range
    ok(h, "run", "-d", "--network", "oldboyedu2021", "--name", "r2", A, "sleep", "300")
    assert (
        ok(
            h, "inspect", "-f", "{{.NetworkSettings.Networks.oldboyedu2021.IPAddress}}", "r2"
        ).strip()
        == "172.26.1.97"
    )
    ok(h, "rm", "-f", "r2")


def test_static_ip_ping_and_duplicate_ip(h: LabHost) -> None:
    ok(h, "run", "-itd", "--network", "jasonyin2020", "--name", "s1", "--ip", "172.28.9.9", A)
    ok(h, "run", "-itd", "--network", "jasonyin2020", "--name", "s2", A)
    ip2 = ok(
        h, "inspect", "-f", "{{.NetworkSettings.Networks.jasonyin2020.IPAddress}}", "s2"
    ).strip()
    assert ip2 and ip2 != "172.28.9.9"
    r = docker(h, "exec", "s2", "ping", "-c1", "-W2", "172.28.9.9")
    assert r.returncode == 0, r.stdout + r.stderr
    r = docker(h, "exec", "s1", "ping", "-c1", "-W2", ip2)
    assert r.returncode == 0, r.stdout + r.stderr
    r = docker(h, "exec", "s1", "ping", "-c1", "-W1", "172.28.9.10")  # nobody: can fail
    assert r.returncode != 0
    before = ps_names(h)
    err = fails(
        h, "run", "-itd", "--name", "s3", "--network", "jasonyin2020", "--ip", "172.28.9.9", A
    )
    assert "docker: Error response from daemon: Address already in use" in err
    assert ps_names(h) == before and "s3" not in before  # nothing half-made left behind
    ok(
        h,
        "run",
        "-d",
        "--name",
        "s3",
        "--network",
        "jasonyin2020",
        "--ip",
        "172.28.9.10",
        A,
        "sleep",
        "60",
    )
    ok(h, "rm", "-f", "s1", "s2", "s3")


def test_name_conflict_text(h: LabHost) -> None:
    cid = ok(h, "run", "-itd", "--name", "web", "--network", "jasonyin2020", A).strip()
    err = fails(h, "run", "-itd", "--name", "web", "--network", "jasonyin2020", A)
    assert err.splitlines()[0] == (
        "docker: Error response from daemon: Conflict. The container name "
        f'"/web" is already in use by container "{cid}". You have to remove (or rename) '
        "that container to be able to reuse that name."
    )
    ok(h, "rm", "-f", "web")


def test_network_not_found(h: LabHost) -> None:
    before = ps_names(h)
    err = fails(h, "run", "--rm", "--network", "nosuchnet", A, "true")
    assert err.splitlines()[0] == "docker: Error response from daemon: network nosuchnet not found"
    assert "Unable to find image" not in err
    assert ps_names(h) == before


# ---------------------------------------------------------------- network modes


def test_mode_host_none_container(h: LabHost) -> None:
    out = ok(h, "run", "--rm", "--network", "host", A, "ip", "-o", "link")
    assert re.search(r"\beth0\b", out)
    host_eth0 = in_host(h, "ip", "-4", "-o", "addr", "show", "dev", "eth0", check=True).stdout
    assert h.address in host_eth0
    assert h.address in ok(h, "run", "--rm", "--network", "host", A, "ip", "-4", "-o", "addr")
    out = ok(h, "run", "--rm", "--network", "none", A, "ip", "-o", "link")
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    assert names == ["lo"]
    cid = ok(
        h, "run", "-d", "--name", "share", "--network", "jasonyin2020", A, "sleep", "300"
    ).strip()
    ip = ok(
        h, "inspect", "-f", "{{.NetworkSettings.Networks.jasonyin2020.IPAddress}}", "share"
    ).strip()
    out = ok(h, "run", "--rm", "--network", "container:share", A, "ip", "-4", "-o", "addr")
    assert f"{ip}/16" in out
    ok(h, "stop", "-t", "0", "share")
    err = fails(h, "run", "--rm", "--network", "container:share", A, "true")
    assert err.splitlines()[0] == (
        f"docker: Error response from daemon: cannot join network of a non running container: {cid}"
    )
    ok(h, "rm", "-f", "share")


# ---------------------------------------------------------------- connect / disconnect


def test_connect_disconnect(h: LabHost) -> None:
    cid = ok(
        h, "run", "-d", "--name", "cc", "--network", "oldboyedu2021", A, "sleep", "300"
    ).strip()
    ok(
        h,
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "jasonyin2020",
        "--ip",
        "172.28.7.1",
        A,
        "sleep",
        "300",
    )
    ok(h, "network", "connect", "--ip", "172.28.7.7", "--alias", "cache", "jasonyin2020", "cc")
    err = fails(h, "network", "connect", "jasonyin2020", "cc", code=1)
    assert err.strip() == (
        "Error response from daemon: endpoint with name cc already exists in network jasonyin2020"
    )
    nets = json.loads(ok(h, "inspect", "-f", "{{json .NetworkSettings.Networks}}", "cc"))
    assert sorted(nets) == ["jasonyin2020", "oldboyedu2021"]
    j = nets["jasonyin2020"]
    assert j["IPAddress"] == "172.28.7.7" and j["Gateway"] == "172.28.0.254"
    assert j["IPPrefixLen"] == 16 and j["MacAddress"] == "02:42:ac:1c:07:07"
    assert "cache" in j["Aliases"]
    assert j["IPAMConfig"] == {"IPv4Address": "172.28.7.7"}
    out = ok(h, "exec", "cc", "ip", "-4", "-o", "addr")
    assert "172.28.7.7/16 brd 172.28.255.255" in out and "172.26.1." in out
    r = docker(h, "exec", "cc", "ping", "-c1", "-W2", "172.28.7.1")
    assert r.returncode == 0, r.stdout + r.stderr
    containers = json.loads(ok(h, "network", "inspect", "jasonyin2020"))[0]["Containers"]
    assert containers[cid]["Name"] == "cc" and containers[cid]["IPv4Address"] == "172.28.7.7/16"
    err = fails(h, "network", "connect", "host", "cc", code=1)
    assert err.strip() == (
        "Error response from daemon: container cannot be disconnected from host network or "
        "connected to host network"
    )
    ok(h, "network", "disconnect", "jasonyin2020", "cc")
    assert "172.28.7.7" not in ok(h, "exec", "cc", "ip", "-4", "-o", "addr")
    assert cid not in json.loads(ok(h, "network", "inspect", "jasonyin2020"))[0]["Containers"]
    # the address is free again
    ok(h, "network", "connect", "--ip", "172.28.7.7", "jasonyin2020", "cc")
    # connect a stopped container: wired at the next start
    ok(h, "stop", "-t", "0", "cc")
    ok(h, "network", "disconnect", "jasonyin2020", "cc")
    ok(h, "network", "connect", "jasonyin2020", "cc")
    ok(h, "start", "cc")
    out = ok(h, "exec", "cc", "ip", "-o", "link")
    assert sorted(re.findall(r": (eth\d+)@", out)) == ["eth0", "eth1"], out
    ok(h, "rm", "-f", "cc", "peer")


# ---------------------------------------------------------------- lifecycle


def test_lifecycle_verbs(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "life", A, "sh", "-c", "echo one; echo two; echo three; sleep 300")
    wait_until(lambda: "three" in ok(h, "logs", "life"), what="logs of life")
    assert ok(h, "logs", "--tail", "1", "life").strip() == "three"
    pid1 = cinspect(h, "life")["State"]["Pid"]
    assert pid1 > 0 and pid_alive(pid1)
    assert ok(h, "stop", "-t", "1", "life").strip() == "life"
    st = cinspect(h, "life")["State"]
    assert st["Status"] == "exited" and not st["Running"]
    wait_until(lambda: not pid_alive(pid1), what="old pid gone")
    ok(h, "start", "life")
    assert cinspect(h, "life")["State"]["Status"] == "running"
    ok(h, "restart", "-t", "1", "life")
    pid2 = cinspect(h, "life")["State"]["Pid"]
    assert pid2 != pid1 and pid_alive(pid2)
    ok(h, "kill", "life")
    wait_until(lambda: cinspect(h, "life")["State"]["Status"] == "exited", what="killed")
    ok(h, "rename", "life", "life2")
    assert "life2" in ps_names(h) and "life" not in ps_names(h)
    fails(h, "stop", "life", code=1)
    ok(h, "start", "life2")
    ok(h, "rm", "-f", "life2")
    assert "life2" not in ps_names(h)
    err = fails(h, "inspect", "life2", code=1)
    assert "No such" in err


def test_wait_exit_codes_streams_env(h: LabHost) -> None:
    r = docker(h, "run", "--rm", A, "sh", "-c", "exit 3")
    assert r.returncode == 3
    r = docker(h, "run", "--rm", A, "sh", "-c", "echo out; echo err >&2")
    assert r.returncode == 0
    assert r.stdout == "out\n" and r.stderr == "err\n"
    ok(h, "run", "-d", "--name", "waiter", A, "sh", "-c", "sleep 1; exit 7")
    assert ok(h, "wait", "waiter").strip() == "7"
    assert cinspect(h, "waiter")["State"]["ExitCode"] == 7
    ok(h, "rm", "waiter")
    out = ok(
        h,
        *("run", "--rm", "-e", "FOO=bar baz", "--hostname", "hh", "-w", "/tmp"),
        *("--entrypoint", "/bin/sh", A, "-c", 'echo "$FOO|$(hostname)|$(pwd)"'),
    )
    assert out == "bar baz|hh|/tmp\n"


def test_logs_follow(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "follow", A, "sh", "-c", "echo first; sleep 2; echo second")
    r = docker(h, "logs", "-f", "follow", timeout=30)
    assert r.returncode == 0
    assert r.stdout.split() == ["first", "second"]
    ok(h, "rm", "follow")


# ---------------------------------------------------------------- leak check


def test_rm_leaves_nothing(h: LabHost) -> None:
    cid = ok(
        h,
        *("run", "-d", "--name", "leaky", "--network", "jasonyin2020", "-p", "18080:80"),
        *(A, "httpd", "-f", "-p", "80"),
    ).strip()
    data = cinspect(h, "leaky")
    ep = data["NetworkSettings"]["Networks"]["jasonyin2020"]
    ip, veth = ep["IPAddress"], "tv" + ep["EndpointID"][:13]
    nsfile = Path(h.exec_root) / "netns" / cid[:12]
    assert veth in links(h)
    # an IPv4-only endpoint has no IPv6 on either end (no link-local address, so no DAD, MLD
    # or router solicitation flooded to every port; no address from a rogue RA)
    assert "inet6" not in ok(h, "exec", "leaky", "ip", "addr", "show", "eth0")
    assert "inet6" in ok(h, "exec", "leaky", "ip", "addr", "show", "lo")
    knob = f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6"
    assert in_host(h, "cat", knob, check=True).stdout.strip() == "1"
    assert nsfile.exists()
    assert mounts_mentioning([cid[:12]])
    table = in_host(h, "nft", "list", "table", "ip", "tether", check=True).stdout
    assert ip in table
    ok(h, "rm", "-f", "leaky")
    assert veth not in links(h)
    assert not nsfile.exists()
    assert mounts_mentioning([cid[:12]]) == []
    assert not any(cid[:12] in p for p in os.listdir(Path(h.exec_root) / "netns"))
    assert "leaky" not in ps_names(h)
    assert cid[:12] not in ok(h, "ps", "-aq").split()
    table = in_host(h, "nft", "list", "table", "ip", "tether", check=True).stdout
    assert ip not in table
    containers = json.loads(ok(h, "network", "inspect", "jasonyin2020"))[0]["Containers"]
    assert cid not in containers


def test_failed_start_leaves_nothing(h: LabHost) -> None:
    nsdir = Path(h.exec_root) / "netns"

    def ns_files() -> list[str]:
        return sorted(os.listdir(nsdir)) if nsdir.exists() else []

    links_before, ns_before = sorted(links(h)), ns_files()
    r = docker(h, "run", "--name", "broken", "--network", "jasonyin2020", A, "/no/such/binary")
    assert r.returncode != 0
    assert "Error response from daemon" in r.stderr
    cid = cinspect(h, "broken")["Id"]
    assert cinspect(h, "broken")["State"]["Running"] is False
    assert sorted(links(h)) == links_before
    assert ns_files() == ns_before
    ok(h, "rm", "broken")
    assert mounts_mentioning([cid[:12]]) == []
    assert "broken" not in ps_names(h)
    containers = json.loads(ok(h, "network", "inspect", "jasonyin2020"))[0]["Containers"]
    assert cid not in containers


def test_run_rm_whose_start_fails_is_removed(h: LabHost) -> None:
    """`docker run --rm` with a missing command: the CLI returns (it waited for the removal
    forever) and the container, its address and its port are gone."""
    r = docker(h, "run", "--rm", "--name", "rr", "--network", "jasonyin2020", "-p", "5051:80",
               A, "/no/such/binary", timeout=30)  # fmt: skip
    assert r.returncode == 127 and "no such file or directory" in r.stderr, r.stderr
    wait_until(lambda: "rr" not in ps_names(h), 10, what="rr to be removed")
    ok(h, "run", "-d", "--name", "rr2", "-p", "5051:80", A, "sleep", "60")
    ok(h, "rm", "-f", "rr2")


def test_refusals_at_create_leave_nothing(h: LabHost) -> None:
    """Network-mode conflicts and bad bridge options: Docker's texts, nothing made."""
    ok(h, "run", "-d", "--name", "base", A, "sleep", "600")
    before = sorted(links(h))
    err = fails(h, "run", "-d", "--network", "container:base", "-p", "4040:80", A, "true")
    assert "conflicting options: port publishing and the container type network mode" in err
    err = fails(h, "run", "-d", "--network", "host", "--link", "base:b", A, "true")
    assert "conflicting options: host type networking can't be used with links" in err
    hb = "com.docker.network.bridge.host_binding_ipv4"
    r = docker(h, "network", "create", "-o", f"{hb}=notanip", "badhb")
    assert r.returncode == 1 and f"failed to parse {hb} value: notanip (nil ip)" in r.stderr
    r = docker(h, "network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.0", "gw0")
    assert "failed to allocate gateway (10.77.0.0): Address already in use" in r.stderr
    assert sorted(links(h)) == before
    assert not {"badhb", "gw0"} & set(ok(h, "network", "ls", "--format", "{{.Name}}").split())
    # the firewall still works: a published port on a new network
    ok(h, "network", "create", "okafter")
    ok(h, "run", "-d", "--name", "pub", "--network", "okafter", "-p", "4041:80", A, "sleep", "60")
    ok(h, "rm", "-f", "pub", "base")
    ok(h, "network", "rm", "okafter")


def test_disconnect_moves_the_default_route(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "gwm", "--network", "jasonyin2020", A, "sleep", "600")
    ok(h, "network", "connect", "oldboyedu2021", "gwm")
    assert "default via 172.28.0.254 dev eth0" in ok(h, "exec", "gwm", "ip", "route")
    ok(h, "network", "disconnect", "jasonyin2020", "gwm")
    assert "default via 172.26.1.254 dev eth1" in ok(h, "exec", "gwm", "ip", "route")
    ok(h, "rm", "-f", "gwm")


def test_connect_link_is_resolvable(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "lweb", "--network", "jasonyin2020", A, "sleep", "600")
    ok(h, "run", "-d", "--name", "lcli", A, "sleep", "600")
    ok(h, "network", "connect", "--link", "lweb:w2", "jasonyin2020", "lcli")
    web_ip = cinspect(h, "lweb")["NetworkSettings"]["Networks"]["jasonyin2020"]["IPAddress"]
    out = ok(h, "exec", "lcli", "nslookup", "w2")
    assert web_ip in out, out
    # what was sent comes back: the CLI's connect sends an empty IPAMConfig and DriverOpts
    j = cinspect(h, "lcli")["NetworkSettings"]["Networks"]
    assert (j["jasonyin2020"]["IPAMConfig"], j["jasonyin2020"]["DriverOpts"]) == ({}, {})
    assert j["jasonyin2020"]["Links"] == ["lweb:w2"]
    assert j["bridge"]["IPAMConfig"] is None and j["bridge"]["DriverOpts"] is None
    ok(h, "rm", "-f", "lweb", "lcli")


def test_images_filtered_by_reference(h: LabHost) -> None:
    """``docker images -q nosuch`` prints nothing (it listed every image, so
    ``docker rmi $(docker images -q nosuch)`` removed them all)."""
    assert ok(h, "images", "-q", "nosuch") == ""
    assert ok(h, "images", "-q", "--filter", "reference=nosuch:tag") == ""
    assert ok(h, "images", "--format", "{{.Repository}}:{{.Tag}}", A).split() == ["alpine:latest"]
    assert ok(h, "images", "-q", "--filter", "dangling=true") == ""
    assert "invalid filter 'nope'" in fails(h, "images", "--filter", "nope=1", code=1)


# ---------------------------------------------------------------- daemon crash (last)


def test_daemon_kill9_containers_survive(lab1: Lab, h: LabHost) -> None:
    ok(
        h,
        "run",
        "-d",
        "--name",
        "surv",
        "--network",
        "jasonyin2020",
        A,
        "sh",
        "-c",
        "echo hello; sleep 300",
    )
    wait_until(lambda: "hello" in ok(h, "logs", "surv"), what="first log line")
    pid = cinspect(h, "surv")["State"]["Pid"]
    ip = cinspect(h, "surv")["NetworkSettings"]["Networks"]["jasonyin2020"]["IPAddress"]
    lab1.restart_daemon("host1", kill9=True)
    assert pid_alive(pid)
    ps = ok(h, "ps", "--format", "{{.Names}} {{.Status}}").splitlines()
    assert any(line.startswith("surv Up") for line in ps), ps
    assert cinspect(h, "surv")["State"]["Pid"] == pid
    assert ok(h, "exec", "surv", "echo", "alive").strip() == "alive"
    assert ok(h, "logs", "surv").strip() == "hello"
    assert ip in ok(h, "exec", "surv", "ip", "-4", "-o", "addr")
    ok(h, "run", "-d", "--name", "after", "--network", "jasonyin2020", A, "sleep", "60")
    ip2 = cinspect(h, "after")["NetworkSettings"]["Networks"]["jasonyin2020"]["IPAddress"]
    assert ip2 != ip  # the reservation survived the crash
    r = docker(h, "exec", "after", "ping", "-c1", "-W2", ip)
    assert r.returncode == 0, r.stdout + r.stderr
    ok(h, "rm", "-f", "surv", "after")
    assert not pid_alive(pid)
