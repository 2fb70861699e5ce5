"""runc config.json building (no root) and runc message parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.runtime.monitor import create_error, exec_error, runc_message
from tether.runtime.oci import BindMount, build_spec, write_bundle


def spec(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"args": ["sh"], "rootfs": "/r", "cgroups_path": "/tether/abc"}
    base.update(kw)
    return build_spec(**base)  # type: ignore[arg-type]


def test_process_defaults() -> None:
    s = spec(env=["A=1"], cwd="/srv", terminal=True)
    p = s["process"]
    assert isinstance(p, dict)
    assert p["args"] == ["sh"]
    assert p["env"][0].startswith("PATH=/usr/local/sbin:")
    assert "A=1" in p["env"]
    assert p["cwd"] == "/srv"
    assert p["terminal"] is True
    assert p["user"] == {"uid": 0, "gid": 0}
    assert "CAP_NET_RAW" in p["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" not in p["capabilities"]["effective"]
    assert "rlimits" not in p


def test_path_from_image_env_is_kept() -> None:
    p = spec(env=["PATH=/bin"])["process"]
    assert isinstance(p, dict)
    assert p["env"] == ["PATH=/bin"]


def test_network_namespace_join_or_host() -> None:
    joined = spec(netns_path="/run/tether/netns/abc")["linux"]
    assert isinstance(joined, dict)
    assert {"type": "network", "path": "/run/tether/netns/abc"} in joined["namespaces"]
    kinds = {n["type"] for n in joined["namespaces"]}
    assert {"pid", "ipc", "uts", "mount"} <= kinds
    host = spec(netns_path=None, uts_namespace=False, hostname="h")
    assert isinstance(host["linux"], dict)
    assert not any(n["type"] in ("network", "uts") for n in host["linux"]["namespaces"])
    assert "hostname" not in host


def test_cgroups_path_must_be_absolute() -> None:
    assert spec()["linux"]["cgroupsPath"] == "/tether/abc"  # type: ignore[index]
    with pytest.raises(ValueError):
        spec(cgroups_path="tether/abc")


def test_mounts_and_etc_files() -> None:
    s = spec(
        hostname="web",
        hosts_path="/d/hosts",
        resolv_conf_path="/d/resolv.conf",
        hostname_path="/d/hostname",
        binds=[BindMount("/data", "/data", readonly=True)],
    )
    mounts = {m["destination"]: m for m in s["mounts"]}  # type: ignore[union-attr]
    for dst in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"):
        assert dst in mounts, dst
    assert "ro" in mounts["/sys"]["options"]
    assert mounts["/etc/hosts"]["source"] == "/d/hosts"
    assert mounts["/etc/resolv.conf"]["type"] == "bind"
    assert mounts["/etc/hostname"]["source"] == "/d/hostname"
    assert "ro" in mounts["/data"]["options"]
    assert s["hostname"] == "web"
    linux = s["linux"]
    assert isinstance(linux, dict)
    assert "/proc/kcore" in linux["maskedPaths"]
    assert "/proc/sys" in linux["readonlyPaths"]


def test_cap_add_drop() -> None:
    caps = spec(cap_add=["NET_ADMIN"], cap_drop=["net_raw"])["process"]["capabilities"]  # type: ignore[index]
    assert "CAP_NET_ADMIN" in caps["bounding"]
    assert "CAP_NET_RAW" not in caps["bounding"]
    everything = spec(cap_add=["ALL"])["process"]["capabilities"]  # type: ignore[index]
    assert "CAP_SYS_ADMIN" in everything["bounding"]


def test_write_bundle(tmp_path: Path) -> None:
    s = spec()
    path = write_bundle(tmp_path / "b", s)
    assert json.loads(path.read_text()) == s


def test_runc_messages_like_docker() -> None:
    stderr = (
        'time="2026-01-01T00:00:00Z" level=error msg="runc create failed: unable to start '
        'container process: exec: \\"true\\": executable file not found in $PATH"\n'
    )
    msg = runc_message(stderr)
    assert msg.startswith("runc create failed: unable to start container process")
    err = create_error(msg)
    assert err.message == (
        "failed to create shim task: OCI runtime create failed: runc create failed: unable to"
        ' start container process: exec: "true": executable file not found in $PATH: unknown'
    )
    assert err.exit_status == 127
    ex = exec_error('runc exec failed: unable to start container process: exec: "x": nope')
    assert ex.message == (
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "x":'
        " nope: unknown"
    )
