"""Identity, privilege and networking run options (issue 16): Docker's checks and texts, the
user resolved from the image's layers, the OCI spec, the hosts file, the MAC address."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_container_controller import aio, started

from tether.api import fieldgate
from tether.api.containers import _ep_json
from tether.contracts.model import Endpoint
from tether.engine import runopts
from tether.errors import BadRequest
from tether.runtime import oci, users

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:\n"


def refused(body: dict[str, Any]) -> str:
    hc = body.setdefault("HostConfig", {})
    with pytest.raises(BadRequest) as exc:
        fieldgate.check_create(body)
        runopts.check_create(body, hc, {}, "network")
    return exc.value.message


# ---------------------------------------------------------------- Docker's texts


def test_capability_names() -> None:
    assert runopts.normalize_caps(["net_admin", "CAP_SYS_TIME", "all"], "CapAdd") == [
        "CAP_NET_ADMIN",
        "CAP_SYS_TIME",
        "ALL",
    ]
    assert refused({"HostConfig": {"CapAdd": ["NOPE"]}}) == (
        'invalid CapAdd: unknown capability: "CAP_NOPE"'
    )
    assert refused({"HostConfig": {"CapDrop": ["cap_nope"]}}) == (
        'invalid CapDrop: unknown capability: "CAP_NOPE"'
    )


def test_security_opt() -> None:
    parse = runopts.parse_security_opt
    assert parse(["no-new-privileges"]).no_new_privileges
    assert parse(["no-new-privileges:true"]).no_new_privileges
    assert not parse(["no-new-privileges=false"]).no_new_privileges
    s = parse(["seccomp=unconfined", "apparmor=unconfined", "label=disable"])
    assert (s.seccomp, s.apparmor, s.label_disable) == ("unconfined", "unconfined", True)
    assert parse(["label:disable"]).label_disable and parse(["disable"]).label_disable
    assert refused({"HostConfig": {"SecurityOpt": ["x"]}}) == 'invalid --security-opt 1: "x"'
    assert refused({"HostConfig": {"SecurityOpt": ["x=y"]}}) == 'invalid --security-opt 2: "x=y"'
    assert refused({"HostConfig": {"SecurityOpt": ["no-new-privileges=maybe"]}}) == (
        'invalid --security-opt 2: "no-new-privileges=maybe"'
    )
    for opt in ('seccomp={"defaultAction":"SCMP_ACT_ERRNO"}', "apparmor=p", "label=type:t"):
        msg = refused({"HostConfig": {"SecurityOpt": [opt]}})
        assert msg.startswith("tether does not support HostConfig.SecurityOpt "), msg


def test_extra_hosts() -> None:
    assert runopts.host_lines(["a:1.2.3.4", "v6:fd00::1", "gw:host-gateway"], "172.17.0.1") == [
        "1.2.3.4\ta",
        "fd00::1\tv6",
        "172.17.0.1\tgw",
    ]
    assert refused({"HostConfig": {"ExtraHosts": ["a:x"]}}) == 'invalid IP address in add-host: "x"'
    assert refused({"HostConfig": {"ExtraHosts": ["nocolon"]}}) == (
        'bad format for add-host: "nocolon"'
    )
    with pytest.raises(BadRequest, match="unable to derive the IP value for host-gateway"):
        runopts.host_lines(["gw:host-gateway"], None)


def test_mac_addresses() -> None:
    assert runopts.parse_mac("02:42:AC:11:00:02") == "02:42:ac:11:00:02"
    assert runopts.parse_mac("02-42-ac-11-00-02") == "02:42:ac:11:00:02"
    assert runopts.parse_mac("0242.ac11.0002") == "02:42:ac:11:00:02"
    assert refused({"MacAddress": "zz"}) == "address zz: invalid MAC address"
    with pytest.raises(BadRequest, match="address 02:42: invalid MAC address"):
        runopts.check_create({}, {}, {"n": {"MacAddress": "02:42"}}, "network")


def test_stop_signal_and_sysctls() -> None:
    assert refused({"StopSignal": "SIGNOPE"}) == "Invalid signal: SIGNOPE"
    assert refused({"StopSignal": "0"}) == "Invalid signal: 0"
    for ok in ("SIGTERM", "usr1", "9", "SIGRTMIN+3", "RTMAX-2"):
        runopts.check_stop_signal(ok)
    check = runopts.check_sysctls
    check({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.x": "1"}, {}, "network")
    check({"kernel.domainname": "d"}, {}, "none")
    with pytest.raises(BadRequest, match=r'^sysctl "net.ipv4.ip_forward" not allowed in host'):
        check({"net.ipv4.ip_forward": "1"}, {}, "host")
    with pytest.raises(BadRequest, match=r'^sysctl "vm.swappiness" is not in a separate kernel'):
        check({"vm.swappiness": "1"}, {}, "network")
    with pytest.raises(BadRequest, match="conflicts with the OCI"):
        check({"kernel.hostname": "x"}, {}, "network")


def test_hosts_names() -> None:
    assert runopts.hosts_names("web", "") == "web"
    assert runopts.hosts_names("web", "example.org") == "web.example.org web"
    assert runopts.hosts_names("a.b", "") == "a.b a"


# ---------------------------------------------------------------- users from the layers


def _layer(root: Path, files: dict[str, str]) -> str:
    for path, text in files.items():
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(root)


def test_read_layered_takes_the_top_layer_and_follows_symlinks(tmp_path: Path) -> None:
    lower = _layer(tmp_path / "l", {"/etc/passwd": "lower", "/etc/group": "g", "/x/real": "r"})
    upper = _layer(tmp_path / "u", {"/etc/passwd": "upper"})
    os.symlink("../x/real", tmp_path / "u" / "etc" / "link")
    assert users.read_layered([upper, lower], "/etc/passwd") == "upper"
    assert users.read_layered([upper, lower], "/etc/group") == "g"
    assert users.read_layered([upper, lower], "/etc/link") == "r"
    assert users.read_layered([upper, lower], "/etc/nope") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")
def test_read_layered_whiteouts_and_opaque_folders(tmp_path: Path) -> None:
    lower = _layer(tmp_path / "l", {"/etc/passwd": "lower", "/etc/group": "g"})
    upper = _layer(tmp_path / "u", {})
    (tmp_path / "u" / "etc").mkdir(parents=True)
    os.mknod(tmp_path / "u" / "etc" / "passwd", 0o600 | 0o020000, os.makedev(0, 0))
    assert users.read_layered([upper, lower], "/etc/passwd") is None
    assert users.read_layered([upper, lower], "/etc/group") == "g"
    os.setxattr(tmp_path / "u" / "etc", "trusted.overlay.opaque", b"y")
    assert users.read_layered([upper, lower], "/etc/group") is None


def test_resolve_layered_with_group_add(tmp_path: Path) -> None:
    root = _layer(tmp_path, {"/etc/passwd": PASSWD, "/etc/group": GROUP})
    user, gids = users.resolve_layered([root], "app", ["audio", "4242", "wheel"])
    assert (user.uid, user.gid, gids) == (1000, 1000, (10, 29, 4242, 10))
    with pytest.raises(BadRequest, match=r"^unable to find user nosuch: no matching entries"):
        users.resolve_layered([root], "nosuch")
    with pytest.raises(BadRequest, match=r"^Unable to find group nope"):
        users.resolve_layered([root], "", ["nope"])
    assert users.resolve_layered([], "")[0].uid == 0  # no passwd: root


# ---------------------------------------------------------------- the OCI spec


def _caps(**kw: Any) -> list[str]:
    s = oci.build_spec(args=["sh"], rootfs="/r", **kw)
    caps: list[str] = s["process"]["capabilities"]["effective"]
    return caps


def test_capabilities_as_docker_tweaks_them() -> None:
    assert _caps() == oci.DEFAULT_CAPABILITIES
    assert "CAP_NET_RAW" not in _caps(cap_drop=["NET_RAW"])
    assert _caps(cap_drop=["NET_RAW"], cap_add=["NET_RAW"]).count("CAP_NET_RAW") == 1
    assert _caps(cap_drop=["ALL"], cap_add=["CHOWN"]) == ["CAP_CHOWN"]
    assert _caps(cap_drop=["ALL"]) == []
    every = _caps(cap_add=["ALL"], cap_drop=["NET_RAW"])
    assert "CAP_SYS_ADMIN" in every and "CAP_NET_RAW" not in every
    assert "CAP_CHOWN" in _caps(cap_add=["ALL"], cap_drop=["ALL"])


def test_privileged_spec() -> None:
    s = oci.build_spec(args=["sh"], rootfs="/r", readonly_rootfs=True)
    dev = {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}
    oci.apply_privileged(s, [dev])
    assert "CAP_SYS_ADMIN" in s["process"]["capabilities"]["bounding"]
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    assert s["linux"]["devices"] == [dev]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in s["mounts"] if m["type"] == "sysfs")
    assert "ro" not in sysfs["options"]
    assert s["root"]["readonly"] is True


def test_domainname_goes_through_the_uts_sysctl() -> None:
    s = oci.build_spec(args=["sh"], rootfs="/r", hostname="web", domainname="example.org")
    assert s["domainname"] == "example.org"
    assert s["linux"]["sysctl"] == {"kernel.domainname": "example.org"}


# ---------------------------------------------------------------- through the controller


def _rootfs(w: Any, cid: str) -> None:
    _layer(w.images.rootfs_path(cid), {"/etc/passwd": PASSWD, "/etc/group": GROUP})


@aio
async def test_user_groups_and_options_reach_the_bundle(tmp_path: Path) -> None:
    w = await started(tmp_path)
    body = {
        "Image": "alpine",
        "User": "app",
        "Domainname": "example.org",
        "HostConfig": {
            "GroupAdd": ["audio"],
            "CapAdd": ["net_admin"],
            "ReadonlyRootfs": True,
            "SecurityOpt": ["no-new-privileges"],
            "ExtraHosts": ["a:1.2.3.4", "gw:host-gateway"],
            "Sysctls": {"net.ipv4.ip_forward": "1"},
        },
    }
    c = await w.ctl.create(body, "app")
    _rootfs(w, c.id)
    await w.ctl.start_container(c.id)
    d = w.ctl.files_dir(c)
    spec = json.loads((d / "bundle" / "config.json").read_text())
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert "CAP_NET_ADMIN" in spec["process"]["capabilities"]["effective"]
    assert spec["process"]["noNewPrivileges"] is True and spec["root"]["readonly"] is True
    assert spec["linux"]["sysctl"]["net.ipv4.ip_forward"] == "1"
    hosts = (d / "hosts").read_text().splitlines()
    ip = c.eps()[0].ip
    gw = str(w.nets.find("bridge").pools[0].gateway)  # type: ignore[union-attr]
    assert hosts[-3:] == ["1.2.3.4\ta", f"{gw}\tgw", f"{ip}\t{c.id[:12]}.example.org {c.id[:12]}"]
    await w.close()


@aio
async def test_unknown_user_fails_the_start_and_leaves_no_sandbox(tmp_path: Path) -> None:
    w = await started(tmp_path)
    c = await w.ctl.create({"Image": "alpine", "User": "nosuch"}, "nouser")
    _rootfs(w, c.id)
    with pytest.raises(BadRequest, match="unable to find user nosuch"):
        await w.ctl.start_container(c.id)
    assert not c.running and w.netns.namespaces == {}
    await w.close()


@aio
async def test_mac_address_from_config_and_endpoint(tmp_path: Path) -> None:
    w = await started(tmp_path)
    await w.net("n1", "10.9.0.0/24", "10.9.0.254")
    c = await w.ctl.create({"Image": "alpine", "MacAddress": "02:42:AC:11:00:99"}, "m1")
    ep = c.eps()[0]
    assert (ep.mac, ep.mac_config) == ("02:42:ac:11:00:99", "02:42:ac:11:00:99")
    assert _ep_json(c, ep, False, False)["MacAddress"] == "02:42:ac:11:00:99"
    eps = {"n1": {"MacAddress": "02:42:0a:09:00:77"}}
    body = {"Image": "alpine", "HostConfig": {"NetworkMode": "n1"}}
    c2 = await w.ctl.create({**body, "NetworkingConfig": {"EndpointsConfig": eps}}, "m2")
    await w.ctl.start_container(c2.id)
    ep2 = Endpoint.from_dict(next(iter(c2.endpoints.values())))
    assert w.nl.sandboxes[w.netns.path(c2.id[:12])]["eth0"].mac == "02:42:0a:09:00:77"
    assert _ep_json(c2, ep2, True, True)["MacAddress"] == "02:42:0a:09:00:77"
    with pytest.raises(BadRequest, match="invalid MAC address"):
        await w.ctl.connect("n1", "m1", {"MacAddress": "nope"})
    assert len(w.ctl.get("m1").endpoints) == 1
    await w.close()
