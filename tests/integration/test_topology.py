"""``tether path`` and ``GET /tether/topology`` on a lab host, checked against real traffic.

One host; the path's verdicts are computed from tether's rules, and each case also sends the
packet (ping/wget from inside a container) to show that the kernel agrees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tether.lab.lab import Lab, LabHost

from .helpers import LabFactory, in_host, wait_until
from .portlab import clean_host, curl, import_image, ip_of, ok, ping_in, web, wget_in

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def h(module_lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Any:
    lab: Lab = module_lab_factory(["host1"], daemons=True)
    host = lab.host("host1")
    import_image(host, Path(tmp_path_factory.mktemp("img")))
    ok(host, "network", "create", "front")
    ok(host, "network", "create", "back")
    ok(host, "network", "create", "--internal", "sealed")
    web(host, "w1", "--network", "front", "-p", "8080:80")
    web(host, "w2", "--network", "front")
    web(host, "d1", "--network", "back")
    web(host, "v1", "--network", "sealed")
    yield host
    clean_host(host, networks=True)


def tether(host: LabHost, *args: str) -> subprocess.CompletedProcess[str]:
    """The tether CLI against the host's daemon (it only talks to the socket)."""
    return subprocess.run([sys.executable, "-m", "tether", *args], env=host.docker_env(),
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def path(host: LabHost, src: str, dst: str) -> dict[str, Any]:
    r = tether(host, "path", "--format", "json", src, dst)
    assert r.returncode in (0, 1), r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    assert r.returncode == (0 if out["ok"] else 1)
    return out


def test_same_bridge_is_ok(h: LabHost) -> None:
    p = path(h, "w1", "w2")
    assert p["ok"] is True and p["network"] == "front"
    assert [x["kind"] for x in p["hops"]] == ["interface", "veth", "bridge", "veth", "interface"]
    assert all(x["state"] == "up" for x in p["hops"]), p["hops"]
    assert ping_in(h, "w1", ip_of(h, "w2"))
    text = tether(h, "path", "w1", "w2")
    assert text.returncode == 0 and text.stdout.startswith("w1 -> w2 over front: ok")


def test_two_networks_without_a_shared_one_are_dropped_by_isolation(h: LabHost) -> None:
    p = path(h, "w1", "d1")
    assert p["ok"] is False
    hop = p["hops"][p["dropped_at"]]
    assert hop["kind"] == "nft" and hop["name"] == "ip tether forward: oifname @bridges drop"
    assert "isolation" in p["reason"]
    assert not ping_in(h, "w1", ip_of(h, "d1"))
    r = tether(h, "path", "w1", "d1")
    assert r.returncode == 1 and "<- drops here" in r.stdout


def test_published_port_from_the_host_is_dnat(h: LabHost) -> None:
    p = path(h, "host", f"{h.address}:8080")
    assert p["ok"] is True, p
    dnat = [x for x in p["hops"] if x.get("verdict") == "dnat"]
    assert dnat and f"-> {ip_of(h, 'w1')}:80" in dnat[0]["name"]
    assert p["hops"][-1]["where"] == "container w1" and p["hops"][-1]["state"] == "up"
    assert curl(h, f"http://{h.address}:8080/hostname") is not None


def test_internal_to_outside_is_dropped(h: LabHost) -> None:
    p = path(h, "v1", "192.0.2.80")
    assert p["ok"] is False
    assert p["hops"][p["dropped_at"]]["name"] == "ip tether forward: iifname @internal drop"
    assert wget_in(h, "v1", f"http://{ip_of(h, 'w1')}/hostname") is None


def test_topology_matches_the_kernel_and_shows_drift(h: LabHost) -> None:
    r = tether(h, "topology", "--format", "json")
    assert r.returncode == 0, r.stderr
    model = json.loads(r.stdout)
    assert model["drift"] == [], model["drift"]
    names = {c["name"] for c in model["containers"]}
    assert {"w1", "w2", "d1", "v1"} <= names
    ep = next(e for e in model["endpoints"] if e["container"] == "w2")
    assert ep["kernel"]["host_side"]["kind"] == "veth"
    assert ep["kernel"]["container_side"]["mac"] == ep["mac"]
    assert ep["kernel"]["container_side"]["addresses"] == [ep["ipv4"]]
    front = next(n for n in model["networks"] if n["name"] == "front")
    assert front["devices"][0]["kernel"]["state"] == "up"
    # the kernel loses w2's veth: drift, and the path stops there
    in_host(h, "ip", "link", "del", ep["host_ifname"], check=True)
    model = json.loads(tether(h, "topology", "--format", "json").stdout)
    assert any(d["name"] == "w2/front" for d in model["drift"]), model["drift"]
    p = path(h, "w1", "w2")
    assert p["ok"] is False and p["hops"][p["dropped_at"]]["state"] == "missing"
    text = tether(h, "topology").stdout
    assert "DRIFT" in text and "network front (bridge)" in text


@pytest.fixture(scope="module")
def webaddr(h: LabHost) -> str:
    """The daemon restarted with ``web-addr`` in its daemon.json (containers are adopted);
    the tests using it come last. The address is the lab host's loopback."""
    return with_web_addr(h)


def with_web_addr(h: LabHost) -> str:
    cfg_path = Path(h.config_file)
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg_path.write_text(json.dumps({**cfg, "web-addr": "127.0.0.1:9323"}))
    h.lab.stop_daemon(h.name)
    h.lab.start_daemon(h.name)
    return "http://127.0.0.1:9323"


def test_metrics_on_the_web_addr(h: LabHost, webaddr: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, str], float]:
        r = in_host(h, "curl", "-sf", f"{webaddr}/metrics", check=True)
        out = {}
        for fam in text_string_to_metric_families(r.stdout):
            for s in fam.samples:
                out[(s.name, s.labels.get("route", s.labels.get("state", "")))] = s.value
        return out

    before = scrape()
    assert before[("tether_containers", "running")] == 4
    for _ in range(2):
        ok(h, "ps")
    after = scrape()
    key = ("tether_api_requests_total", "/containers/json")
    assert after[key] - before.get(key, 0) == 2
    assert ok(h, "exec", "w2", "nslookup", "w1") is not None
    assert scrape()[("tether_dns_queries_total", "")] >= 1


BROWSER = Path(__file__).with_name("webpage_browser.py")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "topology-page.png"
SCREENSHOT_2HOSTS = SCREENSHOT.with_name("topology-page-2hosts.png")


@pytest.mark.skipif(not Path("/usr/bin/chromedriver").exists(), reason="no chromium-driver")
def test_the_page_in_a_real_browser(h: LabHost, webaddr: str, tmp_path: Path) -> None:
    """Headless Chromium (Selenium) inside the lab host: every name, a new container within
    2 s of ``docker run``, the path view, a container's details (with TETHER_DOCS_SCREENSHOT=1
    the screenshot replaces docs/topology-page.png)."""
    shot = tmp_path / "page.png"
    r = in_host(h, sys.executable, str(BROWSER), webaddr, str(shot), "late1", "w1", "d1",
                timeout=180, env=h.docker_env())  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"w1", "w2", "d1", "v1"} <= set(got["containers"]), got
    assert {"front", "back", "sealed"} <= set(got["networks"]), got
    assert got["appeared_s"] < 2.0, got
    assert "dropped at hop" in got["path_text"] and "isolation" in got["path_text"], got
    assert "eth0" in got["details"] and "ports" in got["details"], got
    print(f"first load {got['first_load_ms']:.0f} ms, update {got['appeared_s'] * 1000:.0f} ms")
    if os.environ.get("TETHER_DOCS_SCREENSHOT"):  # refresh docs/topology-page.png
        SCREENSHOT.write_bytes(shot.read_bytes())


def test_overlay_across_hosts_names_the_vtep(
    lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two hosts with etcd: o1 (host1) -> o2 (host2) over an overlay goes through the VXLAN
    device, whose FDB entry sends o2's MAC to host2's VTEP."""
    lab: Lab = lab_factory(["host1", "host2"], etcd=True, daemons=True)
    h1, h2 = lab.host("host1"), lab.host("host2")
    img = tmp_path_factory.mktemp("img")
    import_image(h1, img)
    import_image(h2, img)
    ok(h1, "network", "create", "-d", "overlay", "--subnet", "10.78.0.0/24", "ov1")
    wait_until(lambda: "ov1" in ok(h2, "network", "ls"), 10, what="ov1 on host2")
    ok(h1, "run", "-d", "--name", "o1", "--network", "ov1", "alpine", "sleep", "600")
    ok(h2, "run", "-d", "--name", "o2", "--network", "ov1", "alpine", "sleep", "600")
    o2_ip = ip_of(h2, "o2")
    wait_until(lambda: ping_in(h1, "o1", o2_ip), 15, 0.3, what="o1 pings o2")
    p = path(h1, "o1", "o2")
    assert p["ok"] is True and p["network"] == "ov1", json.dumps(p, indent=1)
    kinds = [x["kind"] for x in p["hops"]]
    assert kinds[:4] == ["interface", "veth", "bridge", "vxlan"], kinds
    fdb = next(x for x in p["hops"] if x["kind"] == "fdb")
    assert fdb["state"] == "present" and fdb["name"].endswith(f"dst {h2.address}")
    under = next(x for x in p["hops"] if x["kind"] == "underlay")
    assert under["vtep"] == h2.address
    model = json.loads(tether(h1, "topology", "--format", "json").stdout)
    ov = next(n for n in model["networks"] if n["name"] == "ov1")
    [peer] = ov["peers"]
    assert peer["container"] == "o2" and peer["vtep"] == h2.address and peer["fdb"] == h2.address
    assert {d["role"] for d in ov["devices"]} == {"bridge", "vxlan"}
    assert all(d["kernel"]["state"] != "down" for d in ov["devices"]), ov["devices"]
    assert model["drift"] == [], model["drift"]
    assert h2.address in {x["address"] for x in model["hosts"]}


@pytest.mark.skipif(not Path("/usr/bin/chromedriver").exists(), reason="no chromium-driver")
def test_the_page_on_two_hosts(
    lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Two hosts with etcd, an overlay and a bridge network: host1's page shows both hosts,
    the underlay and the tunnels, every container and network, a container run on host2
    within 2 s, and the path across the overlay; ``/metrics`` has the cluster's series (with
    TETHER_DOCS_SCREENSHOT=1 the screenshot replaces docs/topology-page-2hosts.png)."""
    lab: Lab = lab_factory(["host1", "host2"], etcd=True, daemons=True)
    h1, h2 = lab.host("host1"), lab.host("host2")
    img = tmp_path_factory.mktemp("img")
    import_image(h1, img)
    import_image(h2, img)
    ok(h1, "network", "create", "-d", "overlay", "--subnet", "10.79.0.0/24", "ovw")
    ok(h1, "network", "create", "brw")
    wait_until(lambda: "ovw" in ok(h2, "network", "ls"), 10, what="ovw on host2")
    ok(h1, "run", "-d", "--name", "a1", "--network", "brw", "alpine", "sleep", "600")
    ok(h1, "run", "-d", "--name", "a2", "--network", "ovw", "alpine", "sleep", "600")
    ok(h2, "run", "-d", "--name", "b1", "--network", "ovw", "alpine", "sleep", "600")
    url = with_web_addr(h1)
    wait_until(lambda: "b1" in in_host(h1, "curl", "-sf", f"{url}/api/topology").stdout, 10,
               what="b1 on host1's topology")  # fmt: skip
    model = json.loads(in_host(h1, "curl", "-sf", f"{url}/api/topology", check=True).stdout)
    b1 = next(c for c in model["containers"] if c["name"] == "b1")
    assert b1["remote"] is True and b1["host"] == h2.address and b1["networks"] == ["ovw"]
    shot = tmp_path / "page.png"
    r = in_host(h1, sys.executable, str(BROWSER), url, str(shot), "late2", "a2", "b1", "ovw",
                h2.docker_host, timeout=180, env=h1.docker_env())  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"a1", "a2", "b1"} <= set(got["containers"]), got
    assert {"ovw", "brw"} <= set(got["networks"]), got
    assert {h1.address, h2.address} <= set(got["hosts"]), got
    assert got["tunnels"] >= 1, got
    assert got["appeared_s"] < 2.0, got
    assert got["path_text"].startswith("ok"), got
    print(f"2 hosts: first load {got['first_load_ms']:.0f} ms, "
          f"update from host2 {got['appeared_s'] * 1000:.0f} ms")  # fmt: skip
    if os.environ.get("TETHER_DOCS_SCREENSHOT"):  # refresh docs/topology-page-2hosts.png
        SCREENSHOT_2HOSTS.write_bytes(shot.read_bytes())
    from prometheus_client.parser import text_string_to_metric_families

    text = in_host(h1, "curl", "-sf", f"{url}/metrics", check=True).stdout
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["tether_cluster_hosts"].samples[0].value == 2
    rtt = fams["tether_cluster_store_round_trip_seconds"].samples
    assert any(s.name.endswith("_count") and s.value > 0 for s in rtt), rtt
    lag = fams["tether_cluster_watch_lag_seconds"].samples
    assert any(s.name.endswith("_count") and s.value > 0 for s in lag), lag
    renewals = {s.labels["outcome"]: s.value for s in fams["tether_cluster_lease_renewals"].samples}
    assert set(renewals) == {"ok", "expired", "failed"}, renewals
