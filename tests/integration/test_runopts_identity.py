"""Identity, privilege and networking run options through the real docker CLI (issue 16).

Each option is checked by its effect inside the container (``id``, ``/proc/self/status``,
``/etc/hosts``, ``/sys/class/net``, a write to the root), and each refusal by Docker's text
with nothing left behind. One lab per module, the busybox image imported as ``alpine``
(its /etc/passwd has root, daemon, bin, sys, www-data, nobody; /etc/group the same and tty,
nogroup).
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest

from tether.lab.lab import LabHost

from .helpers import docker, docker_ok, in_host, netns_names
from .imagefix import build_busybox_tar, import_alpine

pytestmark = pytest.mark.lab

A = "alpine"
DOCKER_DEFAULT_CAPS = "00000000a80425fb"  # Docker 20.10's default set, as CapEff shows it


def _own_bounding_set() -> str:
    """``ALL`` and ``--privileged``: every capability the daemon holds (root lacks
    CAP_SYS_RESOURCE on this kind of host; runc cannot give it)."""
    with open("/proc/self/status") as f:
        return next(line.split()[1] for line in f if line.startswith("CapBnd:"))


ALL_CAPS = _own_bounding_set()


ok = docker_ok


def run(host: LabHost, *args: str) -> str:
    return ok(host, "run", "--rm", *args).strip()


def status_field(host: LabHost, field: str, *opts: str) -> str:
    out = run(host, *opts, A, "grep", f"^{field}:", "/proc/self/status")
    return out.split(":", 1)[1].strip()


def inspect(host: LabHost, name: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(ok(host, "inspect", name))
    return data[0]


def state(host: LabHost) -> tuple[list[str], list[str], list[str]]:
    """What a refused create must not leave: containers, interfaces, namespaces."""
    names = ok(host, "ps", "-a", "--format", "{{.Names}}").split()
    links = in_host(host, "ip", "-br", "link", check=True).stdout.split("\n")
    return sorted(names), sorted(x.split()[0] for x in links if x.strip()), sorted(netns_names())


def refused(host: LabHost, text: str, *args: str) -> None:
    before = state(host)
    r = docker(host, "run", "--rm", *args)
    assert r.returncode == 125, (args, r.returncode, r.stdout, r.stderr)
    assert f"Error response from daemon: {text}" in r.stderr, r.stderr
    assert state(host) == before


def api(host: LabHost, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to the daemon's API socket (what the docker CLI cannot send)."""
    conn = http.client.HTTPConnection("localhost")
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(host.socket)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, "/v1.41" + path, body=data,
                     headers={"Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


def create(host: LabHost, name: str, body: dict[str, Any]) -> None:
    code, out = api(host, "POST", f"/containers/create?name={name}", body)
    assert code == 201, out


@pytest.fixture(scope="module")
def h(host1: LabHost, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    tar = build_busybox_tar(tmp_path_factory.mktemp("img") / "busybox.tar")
    import_alpine(host1, tar)
    ok(host1, "network", "create", "--subnet", "172.29.0.0/24", "idnet")
    return host1


# ---------------------------------------------------------------- user and groups


def test_user_by_name_number_and_group(h: LabHost) -> None:
    assert run(h, "--user", "nobody", A, "id") == "uid=65534(nobody) gid=65534(nogroup)"
    assert run(h, "--user", "1000:1000", A, "id", "-u") == "1000"
    assert run(h, "--user", "1000:1000", A, "id", "-g") == "1000"
    assert run(h, "--user", "www-data:daemon", A, "id") == "uid=33(www-data) gid=1(daemon)"
    assert run(h, A, "id", "-u") == "0"
    # runc sets HOME from the user's passwd entry
    assert run(h, "--user", "www-data", A, "sh", "-c", "echo $HOME") == "/var/www"


def test_exec_runs_as_the_containers_user(h: LabHost) -> None:
    ok(h, "run", "-d", "--name", "asnobody", "--user", "nobody", A, "sleep", "30")
    assert ok(h, "exec", "asnobody", "id", "-u").strip() == "65534"
    assert ok(h, "exec", "-u", "0", "asnobody", "id", "-u").strip() == "0"
    ok(h, "rm", "-f", "asnobody")


def test_group_add_names_and_numbers(h: LabHost) -> None:
    out = run(h, "--user", "nobody", "--group-add", "daemon", "--group-add", "4242", A, "id", "-G")
    assert out.split() == ["65534", "1", "4242"]


def test_unknown_user_fails_at_start_with_runcs_text(h: LabHost) -> None:
    r = docker(h, "run", "--name", "nosuchuser", "--user", "nosuch", A, "id")
    assert r.returncode == 125, r.stderr
    assert "unable to find user nosuch: no matching entries in passwd file" in r.stderr
    c = inspect(h, "nosuchuser")
    assert c["Config"]["User"] == "nosuch"
    assert not c["State"]["Running"]
    ok(h, "rm", "-f", "nosuchuser")
    r = docker(h, "run", "--rm", "--group-add", "nosuchgroup", A, "id")
    assert r.returncode == 125 and "Unable to find group nosuchgroup" in r.stderr, r.stderr


# ---------------------------------------------------------------- capabilities


def test_default_capabilities_are_dockers(h: LabHost) -> None:
    assert status_field(h, "CapEff") == DOCKER_DEFAULT_CAPS
    assert status_field(h, "CapBnd") == DOCKER_DEFAULT_CAPS


def test_cap_drop_net_raw_stops_ping(h: LabHost) -> None:
    run(h, A, "ping", "-c", "1", "-W", "1", "127.0.0.1")
    r = docker(h, "run", "--rm", "--cap-drop", "NET_RAW", A, "ping", "-c", "1", "127.0.0.1")
    assert r.returncode != 0
    assert "permission denied" in (r.stdout + r.stderr).lower()
    # with or without CAP_, any case
    assert status_field(h, "CapEff", "--cap-drop", "cap_net_raw") == "00000000a80405fb"


def test_cap_add_net_admin_allows_link_changes(h: LabHost) -> None:
    cmd = ("sh", "-c", "ip link set lo mtu 1400 && cat /sys/class/net/lo/mtu")
    assert run(h, "--cap-add", "NET_ADMIN", A, *cmd) == "1400"
    r = docker(h, "run", "--rm", A, *cmd)
    assert r.returncode != 0


def test_cap_all(h: LabHost) -> None:
    assert status_field(h, "CapEff", "--cap-drop", "ALL") == "0000000000000000"
    assert status_field(h, "CapEff", "--cap-add", "ALL") == ALL_CAPS
    only = status_field(h, "CapEff", "--cap-drop", "ALL", "--cap-add", "CHOWN")
    assert only == "0000000000000001"


def test_privileged(h: LabHost) -> None:
    assert status_field(h, "CapEff", "--privileged") == ALL_CAPS
    mount = "mkdir /tmp/m && mount -t tmpfs none /tmp/m && echo mounted"
    out = run(h, "--privileged", A, "sh", "-c", mount)
    assert out == "mounted"
    count = ("sh", "-c", "ls /dev | wc -l")
    assert int(run(h, "--privileged", A, *count)) > int(run(h, A, *count))
    sysfs = run(h, "--privileged", A, "grep", " /sys ", "/proc/mounts").split()[3]
    assert sysfs.startswith("rw,")


# ---------------------------------------------------------------- root, security options


def test_read_only_root(h: LabHost) -> None:
    r = docker(h, "run", "--rm", "--read-only", A, "touch", "/x")
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r.stderr
    # Docker's /etc files stay writable bind mounts; /dev/shm is a tmpfs
    out = run(
        h, "--read-only", A, "sh", "-c", "echo ok >> /etc/hosts && touch /dev/shm/y && echo y"
    )
    assert out == "y"
    run(h, A, "touch", "/x")


def test_no_new_privileges(h: LabHost) -> None:
    assert status_field(h, "NoNewPrivs") == "0"
    assert status_field(h, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"
    assert status_field(h, "NoNewPrivs", "--security-opt", "no-new-privileges:true") == "1"
    assert status_field(h, "NoNewPrivs", "--security-opt", "no-new-privileges=false") == "0"
    # tether applies no seccomp, AppArmor or SELinux profile: these say what is applied
    opts = ("seccomp=unconfined", "apparmor=unconfined", "label=disable")
    for opt in opts:
        assert status_field(h, "Seccomp", "--security-opt", opt) == "0"


def test_security_opt_refusals(h: LabHost) -> None:
    refused(h, 'invalid --security-opt 2: "foo=bar"', "--security-opt", "foo=bar", A, "true")
    refused(
        h,
        'invalid --security-opt 2: "no-new-privileges=maybe"',
        *("--security-opt", "no-new-privileges=maybe", A, "true"),
    )
    refused(
        h,
        "tether does not support HostConfig.SecurityOpt apparmor=docker-default",
        *("--security-opt", "apparmor=docker-default", A, "true"),
    )


# ---------------------------------------------------------------- hosts, names, MAC


def test_add_host_lines(h: LabHost) -> None:
    gw = json.loads(ok(h, "network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Gateway"]
    out = run(h, "--add-host", "a:1.2.3.4", "--add-host", "gw:host-gateway", A, "cat", "/etc/hosts")
    lines = out.splitlines()
    assert "1.2.3.4\ta" in lines and f"{gw}\tgw" in lines
    # after Docker's own lines, before the container's own address
    assert lines.index("1.2.3.4\ta") > lines.index("ff02::2\tip6-allrouters")
    assert lines.index(f"{gw}\tgw") < len(lines) - 1
    assert run(h, "--add-host", "v6:fd00::1", A, "grep", "v6", "/etc/hosts") == "fd00::1\tv6"


def test_domainname(h: LabHost) -> None:
    out = run(h, "--hostname", "web", "--domainname", "example.org", A, "sh", "-c",
              "hostname; cat /proc/sys/kernel/domainname; tail -n1 /etc/hosts")  # fmt: skip
    host, domain, own = out.splitlines()
    assert (host, domain) == ("web", "example.org")
    assert own.split("\t")[1] == "web.example.org web"


def test_mac_address(h: LabHost) -> None:
    """Config.MacAddress (docker-py, the 20.10 CLI) and EndpointsConfig.X.MacAddress (API 1.44
    clients). The docker CLI here (28) sends the latter and refuses to against an API 1.41
    daemon, so the containers are made through the API."""
    mac, mac2 = "02:42:ac:11:00:99", "02:42:ac:1d:00:42"
    create(h, "mac1", {"Image": A, "Cmd": ["cat", "/sys/class/net/eth0/address"],
                       "MacAddress": mac})  # fmt: skip
    eps = {"idnet": {"MacAddress": mac2.upper()}}
    create(h, "mac2", {"Image": A, "Cmd": ["cat", "/sys/class/net/eth0/address"],
                       "HostConfig": {"NetworkMode": "idnet"},
                       "NetworkingConfig": {"EndpointsConfig": eps}})  # fmt: skip
    c = inspect(h, "mac1")
    assert c["Config"]["MacAddress"] == mac
    assert c["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] == mac  # before the start
    assert inspect(h, "mac2")["NetworkSettings"]["Networks"]["idnet"]["MacAddress"] == mac2
    assert ok(h, "start", "-a", "mac1").strip() == mac
    assert ok(h, "start", "-a", "mac2").strip() == mac2
    assert inspect(h, "mac2")["NetworkSettings"]["Networks"]["idnet"]["MacAddress"] == mac2
    ok(h, "rm", "mac1", "mac2")
    r = docker(h, "run", "--rm", "--mac-address", "zz", A, "true")
    assert r.returncode != 0 and "zz is not a valid mac address" in r.stderr  # the CLI's check
    before = state(h)
    code, body = api(h, "POST", "/containers/create", {"Image": A, "MacAddress": "zz"})
    assert (code, body["message"]) == (400, "address zz: invalid MAC address")
    bad_host = {"Image": A, "HostConfig": {"ExtraHosts": ["a:x"]}}
    code, body = api(h, "POST", "/containers/create", bad_host)
    assert (code, body["message"]) == (400, 'invalid IP address in add-host: "x"')
    assert state(h) == before


def test_inspect_shows_the_options_back(h: LabHost) -> None:
    ok(h, "create", "--name", "shown", "--user", "nobody", "--group-add", "daemon",
       "--cap-add", "net_admin", "--cap-drop", "NET_RAW", "--read-only",
       "--security-opt", "no-new-privileges", "--add-host", "a:1.2.3.4",
       "--domainname", "example.org", "--sysctl", "net.ipv4.ip_forward=1", A)  # fmt: skip
    c = inspect(h, "shown")
    hc, cfg = c["HostConfig"], c["Config"]
    assert (cfg["User"], cfg["Domainname"]) == ("nobody", "example.org")
    assert hc["GroupAdd"] == ["daemon"]
    # as sent (the CLI normalizes the names itself)
    assert hc["CapAdd"] == ["CAP_NET_ADMIN"] and hc["CapDrop"] == ["CAP_NET_RAW"]
    assert hc["ReadonlyRootfs"] is True and hc["Privileged"] is False
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["ExtraHosts"] == ["a:1.2.3.4"]
    assert hc["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    ok(h, "rm", "shown")


# ---------------------------------------------------------------- sysctls, stop signal


def test_net_sysctl_in_the_containers_namespace(h: LabHost) -> None:
    key = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
    out = run(h, "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", A, "cat", key)
    assert out == "80"
    assert in_host(h, "cat", key, check=True).stdout.strip() != "80"
    refused(
        h,
        'sysctl "net.ipv4.ip_forward" not allowed in host network namespace',
        *("--network", "host", "--sysctl", "net.ipv4.ip_forward=1", A, "true"),
    )


def test_refusals_leave_nothing(h: LabHost) -> None:
    refused(h, 'invalid CapAdd: unknown capability: "CAP_NOPE"', "--cap-add", "NOPE", A, "true")
    refused(h, 'invalid CapDrop: unknown capability: "CAP_NOPE"', "--cap-drop", "nope", A, "true")
    refused(h, "Invalid signal: SIGNOPE", "--stop-signal", "SIGNOPE", A, "true")
