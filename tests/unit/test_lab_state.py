"""Lab names, paths and the state file round trip (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.lab import naming, state
from tether.lab.errors import LabError
from tether.lab.state import HostInfo, LabState, ProcInfo


@pytest.fixture(autouse=True)
def _root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TETHER_LAB_ROOT", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", ["l1", "t0a1b2c3d", "a" * 16])
def test_good_lab_names(name: str) -> None:
    assert naming.check_lab_name(name) == name


@pytest.mark.parametrize("name", ["", "1lab", "Lab", "a-b", "a/b", "a" * 17, "a b"])
def test_bad_lab_names(name: str) -> None:
    with pytest.raises(LabError, match="invalid lab name"):
        naming.check_lab_name(name)


@pytest.mark.parametrize("name", ["ul", "etcd", "Host1", "h/1", "-h", "h" * 21])
def test_bad_host_names(name: str) -> None:
    with pytest.raises(LabError, match="invalid host name"):
        naming.check_host_name(name)


def test_names_carry_the_lab_prefix() -> None:
    assert naming.host_netns("l1", "docker201") == "tlab-l1-docker201"
    assert naming.underlay_netns("l1") == "tlab-l1-ul"
    assert naming.host_address(11) == "198.18.0.11"


def test_state_round_trip(_root: Path) -> None:
    st = LabState(name="l1", dir=str(_root / "l1"), daemons=True, daemon_cmd=["py", "-m", "x"])
    st.ul_netns = "tlab-l1-ul"
    st.hosts["host1"] = HostInfo(
        "host1", 11, "tlab-l1-host1", "198.18.0.11", "h11", str(_root / "l1" / "host1"),
        daemon=ProcInfo(pid=42, starttime=7, argv=["a"], log="/x.log"),
    )  # fmt: skip
    st.save()
    assert state.list_names() == ["l1"]
    back = state.load("l1")
    assert back == st
    assert back.hosts["host1"].socket.endswith("/l1/host1/exec/tether.sock")
    back.remove_file()
    assert state.list_names() == []
    with pytest.raises(LabError, match="not found"):
        state.load("l1")


def test_malformed_state_is_an_error(_root: Path) -> None:
    (_root / "bad.json").write_text("{not json")
    with pytest.raises(LabError, match="cannot read"):
        state.load("bad")
    (_root / "old.json").write_text('{"version": 99}')
    with pytest.raises(LabError, match="unknown state version"):
        state.load("old")


def test_state_round_trip_with_an_etcd_cluster(_root: Path) -> None:
    st = LabState(name="l2", dir=str(_root / "l2"), daemons=True, daemon_cmd=["py"])
    st.etcd_members, st.etcd_tls = 3, True
    st.etcd_procs["etcd2"] = ProcInfo(pid=43, starttime=8, argv=["etcd"], log="/e2.log")
    st.save()
    assert state.load("l2") == st
    from tether.lab.etcdcluster import EtcdCluster

    cluster = EtcdCluster(st)
    assert cluster.endpoints == ["198.18.0.2:2379", "198.18.0.3:2379", "198.18.0.4:2379"]
    assert cluster.store_url == "etcd://198.18.0.2:2379,198.18.0.3:2379,198.18.0.4:2379"
    assert set(cluster.store_opts()) == {"kv.cacertfile", "kv.certfile", "kv.keyfile"}
    st.remove_file()
