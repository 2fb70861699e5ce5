"""docker-compose (Debian's 1.29, /usr/bin/docker-compose) brings a Zabbix-shaped stack up and down.

The stack (``zabbix/docker-compose.yml``): a database reached by name and alias, a server that
needs it, a web front end whose published port is reached from the lab host, a dedicated
network with a subnet and an ip_range, restart policies. The tests run in order on one lab.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.integration.helpers import in_host, wait_until

from tether.lab.lab import LabHost

COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"
FILE = Path(__file__).resolve().parent / "zabbix" / "docker-compose.yml"
PROJECT = "zbx"
NETWORK = f"{PROJECT}_zabbix"

pytestmark = pytest.mark.skipif(
    not Path(COMPOSE).exists(), reason="docker-compose is not installed (make setup installs it)"
)


def compose(host: LabHost, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = host.docker_env()
    env.pop("DOCKER_CONTEXT", None)
    env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"
    return subprocess.run(
        [COMPOSE, "--no-ansi", "-p", PROJECT, "-f", str(FILE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def project_containers(client: Any, all_: bool = True) -> dict[str, Any]:
    found = client.containers.list(
        all=all_, filters={"label": f"com.docker.compose.project={PROJECT}"}
    )
    return {c.labels["com.docker.compose.service"]: c for c in found}


@pytest.fixture(scope="module")
def stack(host: LabHost, client: Any) -> Any:
    r = compose(host, "up", "-d")
    assert r.returncode == 0, r.stdout + r.stderr + host.daemon_log_tail()
    yield r
    compose(host, "down", "-t", "1")


def test_up_creates_network_and_containers(stack: Any, client: Any) -> None:
    net = client.networks.get(NETWORK)
    assert net.attrs["IPAM"]["Config"] == [
        {"Subnet": "172.30.0.0/16", "IPRange": "172.30.240.0/20", "Gateway": "172.30.0.1"}
    ]
    assert net.attrs["Labels"]["com.example.stack"] == "zabbix"
    assert net.attrs["Labels"]["com.docker.compose.project"] == PROJECT
    cs = project_containers(client)
    assert sorted(cs) == ["database", "server", "web"]
    for c in cs.values():
        assert c.status == "running", c.name
        assert list(c.attrs["NetworkSettings"]["Networks"]) == [NETWORK]
    db = cs["database"].attrs["NetworkSettings"]["Networks"][NETWORK]
    assert db["IPAddress"] == "172.30.240.10"
    assert {"database", "mysql-server"} <= set(db["Aliases"])
    for name in ("server", "web"):
        ip = cs[name].attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
        assert ip.startswith("172.30.24") or ip.startswith("172.30.25"), ip  # inside ip_range


def test_restart_policies(stack: Any, client: Any) -> None:
    cs = project_containers(client)
    policies = {k: c.attrs["HostConfig"]["RestartPolicy"] for k, c in cs.items()}
    assert policies["database"]["Name"] == "always"
    assert policies["server"]["Name"] == "unless-stopped"
    assert policies["web"] == {"Name": "on-failure", "MaximumRetryCount": 3}


def test_server_reaches_database_by_name(stack: Any, client: Any, host: LabHost) -> None:
    cs = project_containers(client)

    def logged() -> bool:
        return b"db says mysql-ready" in cs["server"].logs()

    wait_until(logged, timeout=20, what="the server to reach the database")
    r = compose(host, "logs", "--no-color", "server")
    assert "db says mysql-ready" in r.stdout, r.stdout + r.stderr
    server = cs["server"]
    for name in ("database", "mysql-server", f"{PROJECT}_database_1"):
        code, out = server.exec_run(["wget", "-q", "-O-", f"http://{name}:3306/"])
        assert (code, out) == (0, b"mysql-ready\n"), name
    code, out = cs["web"].exec_run(["wget", "-q", "-O-", "http://zabbix-server:10051/"])
    assert (code, out) == (0, b"zabbix-server-ok\n")
    code, out = cs["web"].exec_run(["nslookup", "database"])
    assert code == 0 and b"172.30.240.10" in out, out.decode()


def test_web_published_port_from_the_lab_host(stack: Any, host: LabHost) -> None:
    def fetch(addr: str) -> str:
        r = in_host(host, "timeout", "5", "busybox", "wget", "-q", "-O-", f"http://{addr}:8080/")
        return r.stdout

    wait_until(lambda: fetch(host.address) == "zabbix-web\n", timeout=10, what="web on :8080")
    assert fetch("127.0.0.1") == "zabbix-web\n"


def test_compose_ps_and_second_up_is_a_no_op(stack: Any, client: Any, host: LabHost) -> None:
    before = {k: c.id for k, c in project_containers(client).items()}
    r = compose(host, "ps")
    assert r.returncode == 0, r.stderr
    for name in ("zbx_database_1", "zbx_server_1", "zbx_web_1"):
        assert name in r.stdout
    assert "0.0.0.0:8080->8080/tcp" in r.stdout
    r = compose(host, "up", "-d")
    assert r.returncode == 0, r.stderr
    assert "is up-to-date" in r.stderr
    assert {k: c.id for k, c in project_containers(client).items()} == before


def test_down_removes_everything(stack: Any, client: Any, host: LabHost) -> None:
    r = compose(host, "down", "-t", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert project_containers(client) == {}
    assert client.containers.list(all=True) == []
    assert sorted(n.name for n in client.networks.list()) == ["bridge", "host", "none"]
    r = in_host(
        host, "timeout", "3", "busybox", "wget", "-q", "-O-", f"http://{host.address}:8080/"
    )
    assert r.returncode != 0  # the published port is gone with the stack


# ---- the health-gated stack: depends_on condition service_healthy ----------------------------
HEALTH_FILE = FILE.parent / "docker-compose-health.yml"
HEALTH_PROJECT = "zbxh"


def test_up_waits_for_a_healthy_database(host: LabHost, client: Any) -> None:
    env = host.docker_env()
    env.pop("DOCKER_CONTEXT", None)
    env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"
    cmd = [COMPOSE, "--no-ansi", "-p", HEALTH_PROJECT, "-f", str(HEALTH_FILE)]
    try:
        r = subprocess.run([*cmd, "up", "-d"], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr + host.daemon_log_tail()
        found = client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={HEALTH_PROJECT}"}
        )
        cs = {c.labels["com.docker.compose.service"]: c for c in found}
        db, server = cs["database"], cs["server"]
        assert db.attrs["State"]["Health"]["Status"] == "healthy"
        assert db.attrs["Config"]["Healthcheck"]["Test"] == [
            "CMD-SHELL",
            "test -f /tmp/initialised",
        ]
        # the server started only once the database was healthy: its one try succeeded
        wait_until(lambda: b"db says mysql-ready" in server.logs(), timeout=10,
                   what="the server's one try")  # fmt: skip
        started = server.attrs["State"]["StartedAt"]
        log = db.attrs["State"]["Health"]["Log"]
        healthy_at = min(e["End"] for e in log if e["ExitCode"] == 0)
        assert started >= healthy_at, (started, healthy_at)
    finally:
        subprocess.run([*cmd, "down", "-t", "1"], env=env, capture_output=True, timeout=120)
    assert client.containers.list(all=True) == []


# ---- the stack with a named volume: restart, down / up keep the database's file ------------
VOLUME_FILE = FILE.parent / "docker-compose-volume.yml"
VOLUME_PROJECT = "zbxv"


def test_named_volume_survives_restart_and_down_up(host: LabHost, client: Any) -> None:
    env = host.docker_env()
    env.pop("DOCKER_CONTEXT", None)
    env["COMPOSE_INTERACTIVE_NO_CLI"] = "1"
    cmd = [COMPOSE, "--no-ansi", "-p", VOLUME_PROJECT, "-f", str(VOLUME_FILE)]

    def run(*args: str) -> None:
        r = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, " ".join(args) + ": " + r.stdout + r.stderr

    def services() -> dict[str, Any]:
        found = client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={VOLUME_PROJECT}"}
        )
        return {c.labels["com.docker.compose.service"]: c for c in found}

    def healthy_db() -> Any:
        def ok() -> bool:
            db = services().get("database")
            return db is not None and db.attrs["State"].get("Health", {}).get("Status") == "healthy"

        wait_until(ok, timeout=30, what="the database to be healthy")
        return services()["database"]

    def db_files(db: Any) -> tuple[str, int]:
        code, out = db.exec_run(["cat", "/var/lib/mysql/ibdata1"])
        assert code == 0, out
        code, boots = db.exec_run(["cat", "/var/lib/mysql/boots"])
        assert code == 0, boots
        return out.decode().strip(), boots.decode().split().count("boot")

    volume = f"{VOLUME_PROJECT}_dbdata"
    try:
        run("up", "-d")
        db = healthy_db()
        mounts = db.attrs["Mounts"]
        assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [
            ("volume", volume, "/var/lib/mysql")
        ]
        vol = client.volumes.get(volume)
        assert vol.attrs["Labels"]["com.example.stack"] == "zabbix"
        assert vol.attrs["Labels"]["com.docker.compose.project"] == VOLUME_PROJECT
        data, boots = db_files(db)
        assert data.startswith("created ") and boots == 1
        server = services()["server"]
        wait_until(lambda: f"db says {data}".encode() in server.logs(), timeout=15,
                   what="the server to read the database")  # fmt: skip
        ids = {k: c.id for k, c in services().items()}

        run("restart", "-t", "1")
        db = healthy_db()
        assert {k: c.id for k, c in services().items()} == ids  # the same containers
        assert all(c.status == "running" for c in services().values())
        assert db_files(db) == (data, 2)

        run("down", "-t", "1")  # volumes are kept
        assert services() == {}
        assert client.volumes.get(volume).name == volume
        run("up", "-d")
        db = healthy_db()
        assert db.id != ids["database"]
        assert db_files(db) == (data, 3)  # the same file, a third boot
        server = services()["server"]
        wait_until(lambda: f"db says {data}".encode() in server.logs(), timeout=15,
                   what="the new server to read the kept database")  # fmt: skip
    finally:
        subprocess.run([*cmd, "down", "-v", "-t", "1"], env=env, capture_output=True, timeout=120)
    assert services() == {}
    assert volume not in [v.name for v in client.volumes.list()]
