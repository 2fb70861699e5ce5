"""docker-py (the ``docker`` package) against tether: networks, containers, exec, logs, images.

Every JSON answer docker-py receives is checked against the v1.41 spec (see conftest).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import pytest
from tests.compat.conftest import IMAGE

SLEEPER = ["sleep", "300"]


def _ipam(subnet: str, gateway: str | None = None, ip_range: str | None = None) -> Any:
    pool = docker.types.IPAMPool(subnet=subnet, gateway=gateway, iprange=ip_range)
    return docker.types.IPAMConfig(pool_configs=[pool])


@pytest.fixture
def cleanup(client: Any) -> Any:
    """Collects containers and networks a test made; removes whatever is left afterwards."""
    made: dict[str, list[str]] = {"containers": [], "networks": []}
    yield made
    for cid in made["containers"]:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(cid, force=True)
    for nid in made["networks"]:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(nid)


def test_version_and_ping(client: Any) -> None:
    assert client.ping() is True
    v = client.version()
    assert v["ApiVersion"] == "1.41"
    assert client.api.api_version == "1.41"  # negotiated from /version
    info = client.info()
    assert info["OSType"] == "linux"


def test_network_lifecycle_with_ipam(client: Any, cleanup: Any) -> None:
    net = client.networks.create(
        "pynet",
        driver="bridge",
        ipam=_ipam("172.28.0.0/16", gateway="172.28.5.254", ip_range="172.28.5.0/24"),
        labels={"com.example.purpose": "compat"},
        check_duplicate=True,
    )
    cleanup["networks"].append(net.id)
    assert len(net.id) == 64
    got = client.networks.get("pynet")
    assert got.id == net.id
    cfg = got.attrs["IPAM"]["Config"]
    assert cfg == [
        {"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24", "Gateway": "172.28.5.254"}
    ]
    assert got.attrs["Labels"] == {"com.example.purpose": "compat"}
    assert got.attrs["IPAM"]["Options"] is None  # docker-py sends none: Docker shows null
    assert client.networks.get("bridge").attrs["IPAM"]["Options"] is None
    names = [n.name for n in client.networks.list()]
    assert {"bridge", "host", "none", "pynet"} <= set(names)
    assert [n.name for n in client.networks.list(names=["pynet"])] == ["pynet"]
    assert [n.id for n in client.networks.list(filters={"label": "com.example.purpose"})] == [
        net.id
    ]
    assert [n.id for n in client.networks.list(filters={"label": "com.example.purpose=x"})] == []
    with pytest.raises(docker.errors.APIError) as exc:
        client.networks.create("pynet", check_duplicate=True)
    assert exc.value.status_code == 409
    assert "already exists" in exc.value.explanation
    net.remove()
    cleanup["networks"].remove(net.id)
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("pynet")


def test_network_create_rejects_bad_ipam(client: Any) -> None:
    before = sorted(n.id for n in client.networks.list())
    with pytest.raises(docker.errors.APIError) as exc:
        client.networks.create("badipam", ipam=_ipam("172.29.0.0/16", gateway="10.0.0.1"))
    assert exc.value.status_code == 400
    assert sorted(n.id for n in client.networks.list()) == before


def test_static_address_aliases_connect_disconnect(client: Any, cleanup: Any) -> None:
    net = client.networks.create("pyapp", ipam=_ipam("172.31.10.0/24", gateway="172.31.10.1"))
    cleanup["networks"].append(net.id)
    # a container created on the network with a static address and aliases
    ep = client.api.create_endpoint_config(ipv4_address="172.31.10.50", aliases=["db", "mysql"])
    cid = client.api.create_container(
        IMAGE,
        SLEEPER,
        name="pydb",
        host_config=client.api.create_host_config(network_mode="pyapp"),
        networking_config=client.api.create_networking_config({"pyapp": ep}),
    )["Id"]
    cleanup["containers"].append(cid)
    client.api.start(cid)
    db = client.containers.get(cid)
    settings = db.attrs["NetworkSettings"]["Networks"]["pyapp"]
    assert settings["IPAddress"] == "172.31.10.50"
    assert settings["IPAMConfig"] == {"IPv4Address": "172.31.10.50"}
    assert {"db", "mysql"} <= set(settings["Aliases"])

    # a second container on the default bridge, then connected with an alias of its own
    app = client.containers.run(IMAGE, SLEEPER, name="pyclient", detach=True)
    cleanup["containers"].append(app.id)
    net.connect(app, aliases=["frontend"], ipv4_address="172.31.10.60")
    net.reload()
    assert {db.id, app.id} <= set(net.attrs["Containers"])
    app.reload()
    assert app.attrs["NetworkSettings"]["Networks"]["pyapp"]["IPAddress"] == "172.31.10.60"

    for name in ("db", "mysql", "pydb"):
        code, out = app.exec_run(["ping", "-c", "1", "-W", "2", name])
        assert code == 0, out.decode()
        assert b"172.31.10.50" in out
    code, out = db.exec_run(["nslookup", "frontend"])
    assert code == 0 and b"172.31.10.60" in out, out.decode()

    # a taken static address is refused
    with pytest.raises(docker.errors.APIError) as exc:
        client.api.create_container(
            IMAGE,
            SLEEPER,
            name="pydup",
            host_config=client.api.create_host_config(network_mode="pyapp"),
            networking_config=client.api.create_networking_config(
                {"pyapp": client.api.create_endpoint_config(ipv4_address="172.31.10.50")}
            ),
        ) and client.api.start("pydup")
    cleanup["containers"].append("pydup")
    assert exc.value.status_code in (400, 403, 409)

    # a network with containers cannot be removed
    with pytest.raises(docker.errors.APIError) as exc:
        net.remove()
    assert exc.value.status_code == 403
    assert "active endpoints" in exc.value.explanation

    net.disconnect(app)
    net.reload()
    assert app.id not in net.attrs["Containers"]
    code, _ = app.exec_run(["ping", "-c", "1", "-W", "1", "172.31.10.50"])
    assert code != 0
    with pytest.raises(docker.errors.APIError):
        net.disconnect(app)  # not connected any more


def test_containers_run_exec_logs_remove(client: Any, cleanup: Any) -> None:
    out = client.containers.run(IMAGE, ["sh", "-c", "echo out; echo err >&2"], remove=True)
    assert out == b"out\n"
    c = client.containers.run(
        IMAGE,
        ["sh", "-c", "echo hello; echo oops >&2; exec sleep 300"],
        name="pylogs",
        detach=True,
        labels={"tier": "compat"},
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    cleanup["containers"].append(c.id)
    c.reload()
    assert c.status == "running"
    assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert [x.id for x in client.containers.list(filters={"label": "tier=compat"})] == [c.id]

    res = c.exec_run(["sh", "-c", "echo x; exit 3"])
    assert res.exit_code == 3 and res.output == b"x\n"
    res = c.exec_run(["cat", "/etc/hostname"])
    assert res.output.decode().strip() == c.id[:12]
    res = c.exec_run(["sh", "-c", "echo a; echo b >&2"], demux=True)
    assert res.output == (b"a\n", b"b\n")

    from tests.integration.helpers import wait_until

    wait_until(lambda: b"oops" in c.logs(), what="logs")
    assert c.logs(stdout=True, stderr=False) == b"hello\n"
    assert c.logs(stdout=False, stderr=True) == b"oops\n"
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    assert c.wait(timeout=10)["StatusCode"] == 137
    c.remove()
    cleanup["containers"].remove(c.id)
    assert c.id not in [x.id for x in client.containers.list(all=True)]
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pylogs")


def _save_archive(rootfs: Path, tag: str) -> bytes:
    """A ``docker save`` archive (manifest.json, config, one layer) around ``rootfs``."""
    layer = rootfs.read_bytes()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer0/layer.tar"]}]
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            (config_name, config),
            ("layer0/layer.tar", layer),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_images_load_import_and_run(client: Any, rootfs_tar: Path) -> None:
    loaded = client.images.load(_save_archive(rootfs_tar, "loaded/box:1.0"))
    assert [t for i in loaded for t in i.tags] == ["loaded/box:1.0"]
    img = client.images.get("loaded/box:1.0")
    assert img.attrs["Config"]["Cmd"] == ["/bin/sh"]
    assert client.containers.run("loaded/box:1.0", ["echo", "from-load"], remove=True) == (
        b"from-load\n"
    )
    imported = client.api.import_image(
        src=str(rootfs_tar), repository="imported/box", tag="2", changes=['CMD ["echo", "imp"]']
    )
    assert "sha256:" in json.dumps(imported)
    assert client.containers.run("imported/box:2", remove=True) == b"imp\n"
    tags = {t for i in client.images.list() for t in i.tags}
    assert {"busybox:latest", "loaded/box:1.0", "imported/box:2"} <= tags
    client.images.remove("loaded/box:1.0")
    client.images.remove("imported/box:2")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("loaded/box:1.0")


def test_everything_removed(client: Any) -> None:
    assert client.containers.list(all=True) == []
    assert sorted(n.name for n in client.networks.list()) == ["bridge", "host", "none"]


def test_image_history_save_load_and_prune(client: Any, cleanup: Any, rootfs_tar: Path) -> None:
    import re

    img = client.images.get(IMAGE)
    hist = img.history()
    assert hist[0]["Id"] == img.id and IMAGE in (hist[0]["Tags"] or [])
    assert all(h["Id"] == "<missing>" and h["Tags"] is None for h in hist[1:])
    assert {"Id", "Created", "CreatedBy", "Tags", "Size", "Comment"} <= set(hist[0])
    with pytest.raises(docker.errors.ImageNotFound):
        client.api.history("nosuch:1")

    # save (docker save) -> load round trip, under a tag of its own
    assert img.tag("saved/box", "1")
    data = b"".join(client.images.get("saved/box:1").save(named="saved/box:1"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["saved/box:1"]
    assert "repositories" in names and all(p in names for p in manifest[0]["Layers"])
    client.images.remove("saved/box:1")
    loaded = client.images.load(data)
    # the same image again (save keeps the id, as Docker's): it has its other tags too
    assert [i.id for i in loaded] == [img.id] and "saved/box:1" in loaded[0].tags
    assert loaded[0].attrs["Config"]["Cmd"] == img.attrs["Config"]["Cmd"]
    assert client.containers.run("saved/box:1", ["echo", "saved"], remove=True) == b"saved\n"
    client.images.remove("saved/box:1")

    # prune: an untagged image goes, one a (stopped) container uses stays, tagged ones stay
    def import_untagged(env: str) -> str:
        out = client.api.import_image(src=str(rootfs_tar), changes=[f"ENV {env}"])
        return re.findall(r"sha256:[0-9a-f]{64}", json.dumps(out))[-1]

    free = import_untagged("PRUNE=free")
    used = import_untagged("PRUNE=used")
    c = client.containers.create(used, ["true"])
    cleanup["containers"].append(c.id)
    report = client.images.prune()
    deleted = [d.get("Deleted") for d in report["ImagesDeleted"] or []]
    assert free in deleted and used not in deleted
    assert isinstance(report["SpaceReclaimed"], int)
    client.images.get(used)
    client.images.get(IMAGE)
    c.remove()
    assert used in [d.get("Deleted") for d in client.images.prune()["ImagesDeleted"] or []]
