"""Every Config/HostConfig field of the v1.41 spec, one per create, with a non-default value
(issue 16: "every field is applied or refused by name"), through the raw API (docker-py's
low-level client, answers checked against the spec).

Each field is either refused with a 400 that names it (or with Docker's own text where
Docker refuses the value), or applied: then ``inspect`` shows the value back, under Docker's
spelling, which this file knows field by field (``APPLIED``). No answer is a 5xx, and
nothing is left behind: no container, no volume (refused creates make nothing; applied ones
are removed with their anonymous volumes).

Which fields are applied is read from the gate (``tether.api.fieldgate``): a field that
becomes applied must get an entry in ``APPLIED`` here, or this test fails for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.unit.test_fieldgate import SAMPLES, _definitions, _props, _sample

from tether.api import fieldgate

IMAGE = "busybox:latest"
MiB = 1 << 20

# Fields that need another field to make sense (Docker refuses them alone with its own text).
COMPANIONS: dict[str, dict[str, Any]] = {
    "MemorySwap": {"Memory": 64 * MiB},
    "StdinOnce": {"OpenStdin": True, "AttachStdin": True},
}

Check = Callable[[dict[str, Any], str], None]


def shown(section: str, key: str, want: Any) -> Check:
    """inspect's ``section.key`` equals ``want``."""

    def check(info: dict[str, Any], name: str) -> None:
        got = info[section].get(key)
        assert got == want, f"{section}.{key}: sent {want!r}, inspect shows {got!r}"

    return check


def contains(section: str, key: str, want: list[Any]) -> Check:
    def check(info: dict[str, Any], name: str) -> None:
        got = info[section].get(key) or []
        assert all(w in got for w in want), f"{section}.{key}: {want!r} not in {got!r}"

    return check


def links(info: dict[str, Any], name: str) -> None:
    assert info["HostConfig"]["Links"] == [f"/fsrc:/{name}/db"], info["HostConfig"]["Links"]


def tmpfs_mount(info: dict[str, Any], name: str) -> None:
    (m,) = info["HostConfig"]["Mounts"]
    assert (m["Type"], m["Target"]) == ("tmpfs", "/t"), m
    assert [(x["Type"], x["Destination"]) for x in info["Mounts"]] == [("tmpfs", "/t")]


def anon_volume(info: dict[str, Any], name: str) -> None:
    assert info["Config"]["Volumes"] == {"/data": {}}
    assert [(m["Type"], m["Destination"]) for m in info["Mounts"]] == [("volume", "/data")]


def blkio_weight(info: dict[str, Any], name: str) -> None:
    """Applied where the kernel has a blkio weight; else discarded with Docker's warning and
    shown as 0, as Docker does on such a kernel (this lab host's case)."""
    root = Path("/sys/fs/cgroup/blkio")
    has = any((root / f).exists() for f in ("blkio.weight", "blkio.bfq.weight"))
    assert info["HostConfig"]["BlkioWeight"] == (300 if has else 0)


HC = "HostConfig"
HEALTH = {"Test": ["CMD", "true"], "Interval": 2_000_000_000, "Timeout": 1_000_000_000,
          "Retries": 2, "StartPeriod": 1_000_000_000}  # fmt: skip

# field -> (value sent, how inspect shows it)
APPLIED: dict[str, tuple[Any, Check]] = {
    # Config
    "Hostname": ("fhost", shown("Config", "Hostname", "fhost")),
    "Domainname": ("example.org", shown("Config", "Domainname", "example.org")),
    "User": ("nobody", shown("Config", "User", "nobody")),
    "AttachStdin": (True, shown("Config", "AttachStdin", True)),
    "AttachStdout": (True, shown("Config", "AttachStdout", True)),
    "AttachStderr": (True, shown("Config", "AttachStderr", True)),
    "ExposedPorts": ({"81/tcp": {}}, shown("Config", "ExposedPorts", {"81/tcp": {}})),
    "Tty": (True, shown("Config", "Tty", True)),
    "OpenStdin": (True, shown("Config", "OpenStdin", True)),
    "StdinOnce": (True, shown("Config", "StdinOnce", True)),
    "Env": (["FIELD=1"], contains("Config", "Env", ["FIELD=1"])),
    "Cmd": (["sleep", "7"], shown("Config", "Cmd", ["sleep", "7"])),
    "Healthcheck": (HEALTH, shown("Config", "Healthcheck", HEALTH)),
    "Image": (IMAGE, shown("Config", "Image", IMAGE)),
    "Volumes": ({"/data": {}}, anon_volume),
    "WorkingDir": ("/tmp", shown("Config", "WorkingDir", "/tmp")),
    "Entrypoint": (["/bin/sh"], shown("Config", "Entrypoint", ["/bin/sh"])),
    "MacAddress": ("02:42:ac:11:00:99", shown("Config", "MacAddress", "02:42:ac:11:00:99")),
    "Labels": ({"f": "1"}, shown("Config", "Labels", {"f": "1"})),
    "StopSignal": ("SIGUSR1", shown("Config", "StopSignal", "SIGUSR1")),
    "StopTimeout": (7, shown("Config", "StopTimeout", 7)),
    # HostConfig
    "NetworkMode": ("none", shown(HC, "NetworkMode", "none")),
    "PortBindings": (
        {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]},
        shown(HC, "PortBindings", {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]}),
    ),
    "PublishAllPorts": (True, shown(HC, "PublishAllPorts", True)),
    "RestartPolicy": (
        {"Name": "on-failure", "MaximumRetryCount": 2},
        shown(HC, "RestartPolicy", {"Name": "on-failure", "MaximumRetryCount": 2}),
    ),
    "AutoRemove": (True, shown(HC, "AutoRemove", True)),
    "Links": (["fsrc:db"], links),
    "Dns": (["192.0.2.53"], shown(HC, "Dns", ["192.0.2.53"])),
    "DnsOptions": (["ndots:2"], shown(HC, "DnsOptions", ["ndots:2"])),
    "DnsSearch": (["example.org"], shown(HC, "DnsSearch", ["example.org"])),
    "ContainerIDFile": ("/tmp/fields.cid", shown(HC, "ContainerIDFile", "/tmp/fields.cid")),
    "ConsoleSize": ([24, 80], shown(HC, "ConsoleSize", [24, 80])),
    "Memory": (64 * MiB, shown(HC, "Memory", 64 * MiB)),
    "MemorySwap": (128 * MiB, shown(HC, "MemorySwap", 128 * MiB)),
    "MemoryReservation": (32 * MiB, shown(HC, "MemoryReservation", 32 * MiB)),
    "MemorySwappiness": (10, shown(HC, "MemorySwappiness", 10)),
    "OomKillDisable": (True, shown(HC, "OomKillDisable", True)),
    "CpuShares": (512, shown(HC, "CpuShares", 512)),
    "CpuQuota": (50000, shown(HC, "CpuQuota", 50000)),
    "CpuPeriod": (100000, shown(HC, "CpuPeriod", 100000)),
    "NanoCpus": (500_000_000, shown(HC, "NanoCpus", 500_000_000)),
    "CpusetCpus": ("0", shown(HC, "CpusetCpus", "0")),
    "CpusetMems": ("0", shown(HC, "CpusetMems", "0")),
    "PidsLimit": (64, shown(HC, "PidsLimit", 64)),
    "BlkioWeight": (300, blkio_weight),
    "Ulimits": (
        [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        shown(HC, "Ulimits", [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]),
    ),
    "ShmSize": (128 * MiB, shown(HC, "ShmSize", 128 * MiB)),
    "OomScoreAdj": (100, shown(HC, "OomScoreAdj", 100)),
    "CgroupnsMode": ("private", shown(HC, "CgroupnsMode", "private")),
    "PidMode": ("host", shown(HC, "PidMode", "host")),
    "IpcMode": ("host", shown(HC, "IpcMode", "host")),
    "UTSMode": ("host", shown(HC, "UTSMode", "host")),
    "Init": (True, shown(HC, "Init", True)),
    "Binds": (["/tmp:/hosttmp:ro"], shown(HC, "Binds", ["/tmp:/hosttmp:ro"])),
    "Mounts": ([{"Type": "tmpfs", "Target": "/t"}], tmpfs_mount),
    "Tmpfs": ({"/run2": "size=1m"}, shown(HC, "Tmpfs", {"/run2": "size=1m"})),
    "VolumesFrom": (["fsrc"], shown(HC, "VolumesFrom", ["fsrc"])),
    "VolumeDriver": ("local", shown(HC, "VolumeDriver", "local")),
    "LogConfig": (
        {"Type": "json-file", "Config": {"max-size": "1m"}},
        shown(HC, "LogConfig", {"Type": "json-file", "Config": {"max-size": "1m"}}),
    ),
    "GroupAdd": (["123"], shown(HC, "GroupAdd", ["123"])),
    "ReadonlyRootfs": (True, shown(HC, "ReadonlyRootfs", True)),
    "CapAdd": (["NET_ADMIN"], shown(HC, "CapAdd", ["NET_ADMIN"])),
    "DeviceCgroupRules": (["c 1:3 mr"], shown(HC, "DeviceCgroupRules", ["c 1:3 mr"])),
    "CapDrop": (["MKNOD"], shown(HC, "CapDrop", ["MKNOD"])),
    "Privileged": (True, shown(HC, "Privileged", True)),
    "SecurityOpt": (["no-new-privileges"], shown(HC, "SecurityOpt", ["no-new-privileges"])),
    "ExtraHosts": (["fh:192.0.2.9"], shown(HC, "ExtraHosts", ["fh:192.0.2.9"])),
    "Sysctls": ({"net.ipv4.ip_forward": "1"}, shown(HC, "Sysctls", {"net.ipv4.ip_forward": "1"})),
}

# Refused with Docker's own text (it does not name the field: it names the value).
OWN_TEXTS = {
    "Runtime": "Unknown runtime specified",
    "Isolation": "Invalid isolation",
}
# Not fields of a create body that a client can set (the gate leaves them to their parsers).
NOT_SENT = {"HostConfig", "NetworkingConfig"}


def _fields() -> list[tuple[str, str, Any]]:
    defs = _definitions()
    out: list[tuple[str, str, Any]] = []
    for section, name in (("Config", "ContainerConfig"), ("HostConfig", "HostConfig")):
        for key, schema in _props(defs, name).items():
            if key not in NOT_SENT:
                out.append((section, key, schema))
    return out


def _applied(section: str, key: str) -> bool:
    table = fieldgate.APPLIED_CONFIG if section == "Config" else fieldgate.APPLIED_HOST
    return key in table


def _body(section: str, key: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {}}
    extra = COMPANIONS.get(key, {})
    where = body if section == "Config" else body["HostConfig"]
    for k, v in extra.items():
        (body if k in fieldgate.APPLIED_CONFIG else body["HostConfig"]).update({k: v})
    where[key] = value
    return body


def _volumes(api: Any) -> set[str]:
    return {v["Name"] for v in api.volumes().get("Volumes") or []}


@pytest.mark.parametrize(("section", "key"), [(s, k) for s, k, _ in _fields()])
def test_field_applied_or_refused(client: Any, section: str, key: str) -> None:
    api = client.api
    schema = dict((k, s) for s_, k, s in _fields() if s_ == section)[key]
    containers0 = {c["Id"] for c in api.containers(all=True)}
    volumes0 = _volumes(api)
    if _applied(section, key):
        assert key in APPLIED, f"{section}.{key} is applied: this test must know its inspect"
        value, check = APPLIED[key]
    else:
        value, check = SAMPLES.get(key, _sample(schema)), None
    src = None
    if key in ("Links", "VolumesFrom"):
        src = api.create_container(IMAGE, ["sleep", "60"], name="fsrc", volumes=["/srcvol"])["Id"]
        api.start(src)  # a link needs a running container (Docker's 409 otherwise)
    name = f"f-{key.lower()}"
    body = _body(section, key, value)
    resp = api._post_json(api._url("/containers/create"), data=body, params={"name": name})
    try:
        assert resp.status_code < 500, f"{section}.{key}: {resp.status_code} {resp.text}"
        if check is None:
            assert resp.status_code == 400, f"{section}.{key} accepted: {resp.text}"
            msg = resp.json()["message"]
            assert key in msg or OWN_TEXTS.get(key, "\0") in msg, (key, msg)
        else:
            assert resp.status_code == 201, f"{section}.{key}: {resp.status_code} {resp.text}"
            check(api.inspect_container(name), name)
    finally:
        if resp.status_code == 201:
            api.remove_container(name, v=True, force=True)
        if src is not None:
            api.remove_container(src, v=True, force=True)
    assert {c["Id"] for c in api.containers(all=True)} == containers0
    assert _volumes(api) == volumes0
