"""docker-py 7.1.0's own integration tests, where they failed on tether and pass on Docker
20.10 (issue 17): the same calls and assertions, against a tether daemon in a lab.

commit (``POST /commit``), ``system df``, a network name with a space, a ``docker load``
of something that is no archive, the ``none`` log driver, an exec's detach keys from the
client's config file (docker-py sends ``detachKeys``), a pull of an image no registry has.
"""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest
from tests.compat.conftest import IMAGE


@pytest.fixture
def made(client: Any) -> Iterator[dict[str, list[str]]]:
    out: dict[str, list[str]] = {"containers": [], "images": [], "networks": []}
    yield out
    for cid in out["containers"]:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(cid, force=True)
    for image in out["images"]:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(image, force=True)
    for net in out["networks"]:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(net)


def test_commit_parent_changes_and_contents(client: Any, made: dict[str, list[str]]) -> None:
    api = client.api
    cid = api.create_container(IMAGE, ["sh", "-c", "echo hello > /test; rm /bin/ls"])["Id"]
    made["containers"].append(cid)
    api.start(cid)
    api.wait(cid)
    changes = ["EXPOSE 8000", 'CMD ["cat", "/test"]']
    res = api.commit(cid, repository="committed", tag="v1", changes=changes, author="me")
    made["images"].append(res["Id"])
    img = api.inspect_image(res["Id"])
    assert img["Parent"] == api.inspect_image(IMAGE)["Id"]
    assert img["RepoTags"] == ["committed:v1"]
    assert "8000/tcp" in img["Config"]["ExposedPorts"]
    assert img["Config"]["Cmd"] == ["cat", "/test"]
    assert img["Author"] == "me" and img["Container"] == cid
    assert len(img["RootFS"]["Layers"]) == 2
    out = client.containers.run("committed:v1", remove=True)
    assert out == b"hello\n"
    with pytest.raises(docker.errors.ContainerError):
        client.containers.run("committed:v1", "test -e /bin/ls", remove=True)  # still deleted
    logs = api.remove_image(res["Id"], force=True)
    assert {"Deleted": res["Id"]} in logs


def test_commit_of_a_running_container_pauses_it(client: Any, made: dict[str, list[str]]) -> None:
    c = client.containers.run(IMAGE, ["sh", "-c", "touch /x; sleep 300"], detach=True)
    made["containers"].append(c.id)
    time.sleep(0.3)
    since = int(time.time()) - 1
    image = c.commit()
    made["images"].append(image.id)
    c.reload()
    assert c.status == "running"
    until = int(time.time()) + 1
    actions = [e["Action"] for e in client.api.events(since=since, until=until, decode=True)
               if e.get("id") == c.id]  # fmt: skip
    assert actions[-3:] == ["pause", "unpause", "commit"]
    with pytest.raises(docker.errors.NotFound):
        client.api.commit("nosuch")


def test_system_df(client: Any, made: dict[str, list[str]]) -> None:
    vol = client.volumes.create("dfvol")
    c = client.containers.create(IMAGE, "true", volumes={"dfvol": {"bind": "/v"}})
    made["containers"].append(c.id)
    data = client.df()
    assert data["LayersSize"] > 0
    assert data["BuildCache"] == []
    image = next(i for i in data["Images"] if IMAGE in (i["RepoTags"] or []))
    assert image["Containers"] >= 1
    entry = next(x for x in data["Containers"] if x["Id"] == c.id)
    assert entry["SizeRw"] == 0 and entry["SizeRootFs"] == image["Size"]
    v = next(x for x in data["Volumes"] if x["Name"] == "dfvol")
    assert v["UsageData"] == {"Size": 0, "RefCount": 1}
    c.remove()
    vol.remove()


def test_network_name_with_space(client: Any, made: dict[str, list[str]]) -> None:
    net = client.api.create_network("test 01")
    made["networks"].append(net["Id"])
    assert client.api.inspect_network(net["Id"])["Name"] == "test 01"
    client.api.remove_network("test 01")
    with pytest.raises(docker.errors.APIError) as err:
        client.api.create_network("   ")
    assert err.value.status_code == 400


def test_load_of_no_archive_is_an_error_in_the_stream(client: Any) -> None:
    with pytest.raises(docker.errors.ImageLoadError, match="unexpected EOF"):
        client.images.load("abc")
    resp = client.api._post(client.api._url("/images/load"), data=b"x" * 2048)
    assert resp.status_code == 200
    assert "archive/tar: invalid tar header" in resp.json()["error"]


def test_none_log_driver(client: Any, made: dict[str, list[str]]) -> None:
    out = client.containers.run(IMAGE, "echo hello", log_config={"type": "none"})
    assert out is None
    c = client.containers.list(all=True, filters={"ancestor": IMAGE})[0]
    made["containers"].append(c.id)
    assert c.attrs["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    with pytest.raises(docker.errors.APIError) as err:
        c.logs()
    assert err.value.status_code == 501
    assert "configured logging driver does not support reading" in str(err.value)
    with pytest.raises(docker.errors.APIError, match="unknown log opt 'max-size' for none"):
        client.containers.create(IMAGE, log_config={"type": "none", "config": {"max-size": "1m"}})


def test_exec_detach_keys_from_the_config_file(client: Any, made: dict[str, list[str]]) -> None:
    api = client.api
    api._general_configs["detachKeys"] = "ctrl-p"
    try:
        cid = api.create_container(IMAGE, "cat", detach=True, stdin_open=True)["Id"]
        made["containers"].append(cid)
        api.start(cid)
        exec_id = api.exec_create(cid, "cat", stdin=True, tty=True, stdout=True)
        sock = api.exec_start(exec_id, tty=True, socket=True)
        raw = sock._sock
        raw.sendall(b"\x10")
        time.sleep(0.5)
        with contextlib.suppress(OSError):
            raw.sendall(b"make sure the socket is closed\n")
        raw.settimeout(5)
        data = b""
        with contextlib.suppress(OSError, socket.timeout):
            data = raw.recv(128)
        assert data == b"" or data.startswith(b"exec attach failed")
        sock.close()
    finally:
        del api._general_configs["detachKeys"]


def test_pull_of_an_image_no_registry_has_is_image_not_found(client: Any) -> None:
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.run("dockerpytest_does_not_exist")


def test_cp_reaches_a_stopped_containers_volumes(client: Any, made: dict[str, list[str]]) -> None:
    """docker-py's ArchiveTest: ``cp`` from and to a volume of an exited container."""
    api = client.api
    cid = api.create_container(IMAGE, 'sh -c "echo data > /vol1/data.txt"', volumes=["/vol1"])
    made["containers"].append(cid["Id"])
    api.start(cid)
    api.wait(cid)
    stat = api.get_archive(cid, "/vol1/data.txt")[1]
    assert stat["name"] == "data.txt" and stat["size"] == 5
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("copied.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert api.put_archive(cid, "/vol1", buf.getvalue())
    strm, _ = api.get_archive(cid, "/vol1/copied.txt")
    with tarfile.open(fileobj=io.BytesIO(b"".join(strm))) as tar:
        member = tar.extractfile("copied.txt")
        assert member is not None and member.read() == b"abc"
    vol = api.inspect_container(cid)["Mounts"][0]["Name"]
    api.remove_container(cid, v=True)
    with pytest.raises(docker.errors.NotFound):
        api.inspect_volume(vol)


def test_device_cgroup_rules(client: Any, made: dict[str, list[str]]) -> None:
    """docker-py's test_create_with_device_cgroup_rules."""
    api = client.api
    rule = "c 7:128 rwm"
    hc = api.create_host_config(device_cgroup_rules=[rule])
    ctnr = api.create_container(IMAGE, "cat /sys/fs/cgroup/devices/devices.list", host_config=hc)
    made["containers"].append(ctnr["Id"])
    assert api.inspect_container(ctnr)["HostConfig"]["DeviceCgroupRules"] == [rule]
    api.start(ctnr)
    api.wait(ctnr)
    assert rule in api.logs(ctnr).decode()
    with pytest.raises(docker.errors.APIError, match="invalid device cgroup rule format"):
        api.create_container(IMAGE, host_config=api.create_host_config(device_cgroup_rules=["x"]))
