"""Pure parts of the container extras (issue 17): detach keys, user specs, docker diff,
cp's path rules and stat mode, docker top's ps parsing, docker stats' JSON."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tether.api.streams import EscapeProxy, parse_detach_keys
from tether.engine.stats import empty_stats_json, stats_json
from tether.engine.top import check_ps_args, parse_ps_output
from tether.errors import BadRequest, Internal
from tether.runtime.diff import overlay_changes
from tether.runtime.fsjob import abs_path, go_mode
from tether.runtime.procs import net_dev
from tether.runtime.users import resolve


def test_detach_keys_as_docker_parses_them() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,a") == b"\x01a"
    assert parse_detach_keys("ctrl-@,ctrl-_,DEL") == b"\x00\x1f\x7f"
    for bad in ("ctrl-A", "ctrl-1", "alt-a", "ctrl-p,,", "ab"):
        with pytest.raises(ValueError, match="Unknown character"):
            parse_detach_keys(bad)


def test_escape_proxy_holds_the_sequence_and_detaches() -> None:
    p = EscapeProxy(b"\x10\x11")
    assert p.feed(b"ls\n") == (b"ls\n", False)
    assert p.feed(b"\x10") == (b"", False)
    assert p.feed(b"x") == (b"\x10x", False)  # not the sequence: the held key goes through
    assert p.feed(b"\x10") == (b"", False)
    assert p.feed(b"\x11") == (b"", True)
    # Docker's proxy looks at one-byte reads only
    assert EscapeProxy(b"\x10\x11").feed(b"\x10\x11") == (b"\x10\x11", False)
    assert EscapeProxy(b"").keys == b"\x10\x11"  # the default


PASSWD = """root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
postgres:x:70:70::/var/lib/postgresql:/bin/sh
"""
GROUP = """root:x:0:
postgres:x:70:
audio:x:29:postgres,other
video:x:44:postgres
"""


def test_user_specs_resolve_as_runc() -> None:
    u = resolve("postgres", PASSWD, GROUP)
    assert (u.uid, u.gid, u.sgids, u.home) == (70, 70, (29, 44), "/var/lib/postgresql")
    assert resolve("nobody", PASSWD, GROUP).spec == "65534:65534"
    assert resolve("1000:1000", PASSWD, GROUP).spec == "1000:1000"
    assert resolve("1000", PASSWD, GROUP).spec == "1000:0"
    assert resolve("postgres:audio", PASSWD, GROUP).spec == "70:29"
    assert resolve("70", PASSWD, GROUP).sgids == (29, 44)  # numeric: still the entry's groups
    assert resolve("", PASSWD, GROUP).spec == "0:0"
    assert resolve("0", None, None).spec == "0:0"  # no passwd file: numbers only


def test_unknown_users_and_groups_have_runcs_texts() -> None:
    with pytest.raises(
        BadRequest, match=r"^unable to find user pg: no matching entries in passwd file$"
    ):
        resolve("pg", PASSWD, GROUP)
    with pytest.raises(BadRequest, match="unable to find user pg: no matching entries in passwd"):
        resolve("pg", None, None)
    with pytest.raises(BadRequest, match="unable to find group nope: no matching entries in group"):
        resolve("postgres:nope", PASSWD, GROUP)
    with pytest.raises(BadRequest, match="uids and gids must be in range"):
        resolve("-1", PASSWD, GROUP)


def test_diff_of_an_upper_layer(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "usr/lib", "tmp"):
        (lower / d).mkdir(parents=True)
    (lower / "etc/passwd").write_text("root\n")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("root\nnew\n")
    (upper / "etc/hosts").write_text("")  # a mount point: Docker's init layer
    (upper / "data/sub").mkdir(parents=True)
    (upper / "data/sub/f").write_text("x")
    (upper / "tmp").mkdir()
    (upper / "tmp/new").write_text("hi")
    os.utime(upper / "tmp", ns=(0, 0))
    got = overlay_changes([str(lower)], str(upper))
    assert got == [
        {"Path": "/data", "Kind": 1},
        {"Path": "/data/sub", "Kind": 1},
        {"Path": "/data/sub/f", "Kind": 1},
        {"Path": "/etc", "Kind": 0},
        {"Path": "/etc/passwd", "Kind": 0},
        {"Path": "/tmp", "Kind": 0},
        {"Path": "/tmp/new", "Kind": 1},
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="a whiteout is a 0/0 character device")
def test_diff_whiteouts_are_deletions(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/group").write_text("g")
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc/group", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    got = overlay_changes([str(lower)], str(upper))
    assert {"Path": "/etc/group", "Kind": 2} in got and {"Path": "/etc", "Kind": 0} in got


def test_cp_paths_and_modes() -> None:
    assert abs_path("tmp/x") == "/tmp/x"
    assert abs_path("/tmp/") == "/tmp/"
    assert abs_path("/tmp/.") == "/tmp/."
    assert abs_path("/") == "/"
    assert go_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755


PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init splash
root         812     700  0 10:01 ?        00:00:00 sleep 600 now
root         813     700  0 10:01 ?        00:00:00 other
"""


def test_top_keeps_the_containers_rows() -> None:
    out = parse_ps_output(PS, [812])
    assert out["Titles"][1] == "PID" and len(out["Titles"]) == 8
    assert out["Processes"] == [
        ["root", "812", "700", "0", "10:01", "?", "00:00:00", "sleep 600 now"]
    ]
    assert parse_ps_output(PS, [9])["Processes"] is None
    with pytest.raises(Internal, match="Couldn't find PID field in ps output"):
        parse_ps_output("USER CMD\nroot x\n", [1])
    assert check_ps_args("-ef") == ["-ef"]
    assert check_ps_args("-o pid=PID,comm") == ["-o", "pid=PID,comm"]
    with pytest.raises(BadRequest, match='specifying "user=PID" is not allowed'):
        check_ps_args("-o user=PID")


NETDEV = "\n".join(
    [
        "Inter-|   Receive |  Transmit",
        " face |bytes packets errs drop fifo frame compressed multicast|bytes packets ...",
        "    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0",
        "  eth0: 1500 12 1 2 0 0 0 0 900 9 3 4 0 0 0 0",
    ]
)


def test_stats_json_shape() -> None:
    nets = net_dev(NETDEV)
    assert nets == {
        "eth0": {
            "rx_bytes": 1500,
            "rx_packets": 12,
            "rx_errors": 1,
            "rx_dropped": 2,
            "tx_bytes": 900,
            "tx_packets": 9,
            "tx_errors": 3,
            "tx_dropped": 4,
        }
    }
    sample = {
        "read": 1_700_000_000.5,
        "cgroup": {
            "cpu": {"usage": {"total": 5, "percpu": [2, 3], "kernel": 1, "user": 4}},
            "memory": {
                "usage": {"usage": 100, "max": 200, "limit": 1 << 62},
                "raw": {"total_inactive_file": 10},
            },
            "pids": {"current": 2},
        },
        "networks": nets,
        "system_cpu_usage": 10**12,
        "online_cpus": 2,
        "machine_memory": 1 << 30,
    }
    out = stats_json("web", "ab" * 32, sample, None)
    assert out["name"] == "/web" and out["preread"] == "0001-01-01T00:00:00Z"
    assert out["read"].startswith("2023-11-14T22:13:20.5")
    assert out["memory_stats"]["limit"] == 1 << 30  # no limit: the machine's memory
    assert out["memory_stats"]["stats"] == {"total_inactive_file": 10}
    assert out["cpu_stats"]["cpu_usage"]["percpu_usage"] == [2, 3]
    assert out["cpu_stats"]["online_cpus"] == 2 and out["pids_stats"] == {"current": 2}
    assert out["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    second = stats_json("web", "ab" * 32, sample, sample)
    assert second["precpu_stats"]["system_cpu_usage"] == 10**12
    empty = empty_stats_json("web", "x")
    assert "networks" not in empty and empty["memory_stats"] == {}
