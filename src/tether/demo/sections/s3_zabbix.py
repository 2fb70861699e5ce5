"""Section 3: the Zabbix-shaped stack on one network, by names, and the restart policies.

busybox stands in for the four images: each "service" is an ``httpd`` answering with its own
name on the service's port, so "the server reaches the database by name" is a real TCP
exchange (``wget http://$DB_SERVER_HOST:3306/``). The web front end publishes ``-p 80:8080``
and is fetched from docker201 itself and from docker202 across the lab's underlay.

Restart policies: ``no`` (default) never restarts; ``on-failure:3`` gives up after three
restarts (``3 exited``); ``always`` and ``unless-stopped`` restart a container whose process
was killed from the host; ``docker stop``/``docker kill`` never cause a restart; after a daemon
restart the stopped ``always`` container runs again and the ``unless-stopped`` one stays stopped.
"""

from __future__ import annotations

from tether.demo.expect import ok
from tether.demo.sections.base import HEX64, Ctx, remove_containers, remove_networks

NET = "zabbix-net"
STACK = ("mysql-server", "zabbix-java-gateway", "zabbix-server-mysql", "zabbix-web-nginx-mysql")
POLICIES = ("once", "flaky", "keeper", "steady")
IN_RANGE = r"172\.20\.(24\d|25[0-5])\.\d+"
STATE = "'{{.RestartCount}} {{.State.Status}}'"
NAME_IP = "'{{.Name}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'"
WGET = "curl -sS -m 3"


def serve(text: str, port: int) -> str:
    """busybox sh -c: an httpd answering ``text`` on ``port`` (the service's stand-in)."""
    return (
        f"sh -c 'mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {port} -h /www'"
    )


def run(ctx: Ctx) -> None:
    try:
        stack(ctx)
    finally:
        remove_containers(ctx, ctx.h1, *STACK)
        remove_networks(ctx, ctx.h1, NET)
    try:
        policies(ctx)
    finally:
        remove_containers(ctx, ctx.h1, *POLICIES)


def stack(ctx: Ctx) -> None:
    r, h = ctx.r, ctx.h1
    _start_stack(ctx)
    r.note("every address comes from --ip-range 172.20.240.0/20")
    r.docker(
        h,
        f"inspect -f {NAME_IP} {' '.join(STACK)}",
        ok(regex=tuple(rf"^/{n} {IN_RANGE}$" for n in STACK)),
    )
    r.docker(h, "ps", ok(regex=(r"0\.0\.0\.0:80->8080/tcp", r"0\.0\.0\.0:10051->10051/tcp")))
    _reach_by_name(ctx)
    _reach_web(ctx)


def _start_stack(ctx: Ctx) -> None:
    """The network and the four services."""
    r, h = ctx.r, ctx.h1
    run_on = f"run -itd --network {NET} --restart unless-stopped"
    r.docker(
        h,
        f"network create -d bridge --subnet 172.20.0.0/16 --ip-range 172.20.240.0/20 {NET}",
        ok(regex=HEX64),
        critical=True,
    )
    r.docker(
        h,
        f'{run_on} --name mysql-server -e MYSQL_DATABASE="zabbix" -e MYSQL_USER="zabbix"'
        f' -e MYSQL_PASSWORD="zabbix_pwd" alpine {serve("mysql-server-ok", 3306)}',
        critical=True,
    )
    r.docker(h, f"{run_on} --name zabbix-java-gateway alpine {serve('java-gateway-ok', 10052)}")
    r.docker(
        h,
        f'{run_on} --name zabbix-server-mysql -e DB_SERVER_HOST="mysql-server"'
        f' -e ZBX_JAVAGATEWAY="zabbix-java-gateway" -p 10051:10051'
        f" alpine {serve('zabbix-server-ok', 10051)}",
    )
    r.docker(
        h,
        f'{run_on} --name zabbix-web-nginx-mysql -e ZBX_SERVER_HOST="zabbix-server-mysql"'
        f' -e DB_SERVER_HOST="mysql-server" -p 80:8080 alpine {serve("zabbix-web-ok", 8080)}',
    )


def _reach_by_name(ctx: Ctx) -> None:
    r, h = ctx.r, ctx.h1
    r.note("the server finds the database by the name in DB_SERVER_HOST")
    server = "exec zabbix-server-mysql"
    r.docker(h, f"{server} sh -c 'echo $DB_SERVER_HOST'", ok(regex=r"^mysql-server$"))
    r.docker(h, f"{server} ping -c1 -W1 mysql-server", ok("1 packets received"))
    r.docker(
        h,
        f"{server} sh -c 'wget -q -O - http://$DB_SERVER_HOST:3306/'",
        ok("mysql-server-ok"),
        retry_for=5,
    )
    r.docker(
        h,
        f"{server} wget -q -O - http://zabbix-java-gateway:10052/",
        ok("java-gateway-ok"),
        retry_for=5,
    )
    r.docker(
        h,
        "exec zabbix-web-nginx-mysql wget -q -O - http://zabbix-server-mysql:10051/",
        ok("zabbix-server-ok"),
        retry_for=5,
    )


def _reach_web(ctx: Ctx) -> None:
    r, h = ctx.r, ctx.h1
    r.note("-p 80:8080: the web front end from the host, and from the other host")
    r.docker(h, "port zabbix-web-nginx-mysql", ok(regex=r"^8080/tcp -> 0\.0\.0\.0:80$"))
    addr = ctx.addresses[h]
    r.sh(h, f"{WGET} http://127.0.0.1:80/", ok("zabbix-web-ok"), retry_for=5)
    r.sh(h, f"{WGET} http://{addr}:80/", ok("zabbix-web-ok"), retry_for=5)
    r.sh(ctx.h2, f"{WGET} http://{addr}:80/", ok("zabbix-web-ok"), retry_for=5)


def _kill_from_host(ctx: Ctx, name: str) -> None:
    out = ctx.r.quiet(ctx.h1, ["inspect", "-f", "{{.State.Pid}}", name])
    pid = out.stdout.strip()
    if out.code != 0 or not pid.isdigit() or pid == "0":
        ctx.r.check(f"{name} has a process id", False, "docker inspect gave no .State.Pid")
        return
    ctx.r.sh(ctx.h1, f"kill -9 {pid}", title=f"kill -9 {name}'s process from the host")


def policies(ctx: Ctx) -> None:
    r, h = ctx.r, ctx.h1
    r.note("restart policy 'no' (the default): an exit stays an exit")
    r.docker(h, "run -d --name once alpine sh -c 'exit 1'")
    r.docker(
        h,
        "inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' once",
        ok(regex=r"^0 exited 1$"),
        retry_for=10,
    )

    r.note("on-failure:3: three restarts, then it stays exited")
    r.docker(h, "run -d --name flaky --restart on-failure:3 alpine sh -c 'exit 1'")
    r.docker(h, f"inspect -f {STATE} flaky", ok(regex=r"^3 exited$"), retry_for=30)
    r.docker(
        h,
        "inspect -f '{{.HostConfig.RestartPolicy.Name}}:"
        "{{.HostConfig.RestartPolicy.MaximumRetryCount}}' flaky",
        ok(regex=r"^on-failure:3$"),
    )

    r.note("always / unless-stopped: a process killed from the host is restarted")
    r.docker(h, "run -d --name keeper --restart always alpine sleep 3600")
    r.docker(h, "run -d --name steady --restart unless-stopped alpine sleep 3600")
    for name in ("keeper", "steady"):
        _kill_from_host(ctx, name)
        r.docker(h, f"inspect -f {STATE} {name}", ok(regex=r"^1 running$"), retry_for=15)

    r.note("docker stop / docker kill never trigger a restart")
    r.docker(h, "stop keeper", ok("keeper"))
    r.docker(h, "kill steady", ok("steady"))
    r.sh(h, "sleep 2")
    r.docker(
        h,
        "ps -a --format '{{.Names}} {{.Status}}'",
        ok(regex=(r"^keeper Exited", r"^steady Exited")),
    )

    r.note("a daemon restart brings 'always' back; 'unless-stopped' stays stopped")
    r.action(h, f"restart the tether daemon of {h}", lambda: ctx.restart_daemon(h), critical=True)
    r.docker(h, "inspect -f '{{.State.Status}}' keeper", ok(regex=r"^running$"), retry_for=15)
    r.docker(h, "inspect -f '{{.State.Status}}' steady", ok(regex=r"^exited$"))
    r.docker(h, f"inspect -f {STATE} flaky", ok(regex=r"^3 exited$"))
