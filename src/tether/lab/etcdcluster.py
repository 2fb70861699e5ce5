"""``tether lab up --etcd N [--etcd-tls]``: an etcd cluster of N members on the underlay.

Members ``etcd1``..``etcdN`` run in the underlay namespace on 198.18.0.2, .3, .4, ...
(addresses added to the underlay bridge; the hosts start at .11), each with its own data
folder and log under the lab's folder (``etcd-cluster/etcdI/``, ``etcd-cluster/etcdI.log``).

With ``--etcd-tls`` the lab makes its own CA and certificates (:mod:`tether.lab.pki`, in
``etcd-cluster/pki/``); the members then serve clients on https only and require a client
certificate signed by that CA (``--client-cert-auth``), and talk to each other over TLS on
the peer port too. The daemons get every endpoint in ``--cluster-store`` and, with TLS,
``cluster-store-opts`` (kv.cacertfile, kv.certfile, kv.keyfile) in their ``daemon.json``,
where operators put them (a test may rewrite that file to take them away).

A single member without TLS (``--etcd``) stays the lab's original etcd on 198.18.0.2
(``start_single``/``stop_single``, behind ``Lab.start_etcd``/``Lab.stop_etcd``).

``enable_auth`` turns etcd's user/password authentication on (a ``root`` user, and a user
with read-write access to ``/tether/``), from inside the underlay namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tether.lab import links, naming, probe, procs, system
from tether.lab.errors import LabError
from tether.lab.pki import LabPki, make_pki
from tether.lab.state import LabState, ProcInfo

FIRST_MEMBER_INDEX = 2  # 198.18.0.2: the single etcd's address is the first member's
MAX_MEMBERS = 7


def plan(etcd: bool | int, tls: bool) -> tuple[bool, int]:
    """``Lab.up``'s ``etcd``/``etcd_tls`` -> (the single etcd?, members of a cluster or 0)."""
    members = int(etcd)
    if tls and not members:
        raise LabError("--etcd-tls needs --etcd N")
    if not 0 <= members <= MAX_MEMBERS:
        raise LabError(f"--etcd {members}: from 1 to {MAX_MEMBERS} members")
    single = members == 1 and not tls
    return single, 0 if single else members


def member_names(count: int) -> list[str]:
    return [f"etcd{i}" for i in range(1, count + 1)]


def member_address(name: str) -> str:
    return naming.host_address(FIRST_MEMBER_INDEX + int(name.removeprefix("etcd")) - 1)


class EtcdCluster:
    """The lab's etcd members (state in ``LabState.etcd_members``/``etcd_tls``/``etcd_procs``)."""

    def __init__(self, state: LabState) -> None:
        self._state = state
        self.folder = Path(state.dir) / "etcd-cluster"

    @property
    def names(self) -> list[str]:
        return member_names(self._state.etcd_members)

    @property
    def tls(self) -> bool:
        return self._state.etcd_tls

    @property
    def pki(self) -> LabPki | None:
        return LabPki(self.folder / "pki") if self.tls else None

    def endpoint(self, name: str) -> str:
        return f"{member_address(name)}:{naming.ETCD_CLIENT_PORT}"

    @property
    def endpoints(self) -> list[str]:
        return [self.endpoint(n) for n in self.names]

    @property
    def store_url(self) -> str:
        """The daemons' ``--cluster-store``: every member."""
        return "etcd://" + ",".join(self.endpoints)

    def store_opts(self) -> dict[str, str]:
        pki = self.pki
        return pki.store_opts() if pki is not None else {}

    def log(self, name: str) -> str:
        return str(self.folder / f"{name}.log")

    # ------------------------------------------------------------------ members

    def _scheme(self) -> str:
        return "https" if self.tls else "http"

    def _argv(self, name: str) -> list[str]:
        addr, scheme = member_address(name), self._scheme()
        client = f"{scheme}://{addr}:{naming.ETCD_CLIENT_PORT}"
        cluster = ",".join(
            f"{n}={scheme}://{member_address(n)}:{naming.ETCD_PEER_PORT}" for n in self.names
        )
        argv = [
            "/usr/bin/etcd",
            f"--name={name}",
            f"--data-dir={self.folder / name}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={scheme}://{addr}:{naming.ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls={scheme}://{addr}:{naming.ETCD_PEER_PORT}",
            f"--initial-cluster={cluster}",
            f"--initial-cluster-token={naming.NETNS_PREFIX}{self._state.name}",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        pki = self.pki
        if pki is not None:
            for side in ("", "peer-"):
                argv += [
                    f"--{side}cert-file={pki.server_cert}",
                    f"--{side}key-file={pki.server_key}",
                    f"--{side}trusted-ca-file={pki.ca}",
                    f"--{side}client-cert-auth",
                ]
        return argv

    def start(self, timeout: float) -> None:
        """Make the certificates (with TLS), start every member, wait until all are healthy."""
        ul = self._underlay()
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.tls and not (self.folder / "pki").is_dir():
            # + the bridge's own address: the members' peer connections leave from it, and
            # etcd checks a peer's address against its certificate
            ips = [member_address(n) for n in self.names] + [naming.GATEWAY_ADDRESS]
            make_pki(self.folder / "pki", ips)
        for name in self.names:
            links.add_address(
                ul,
                naming.UNDERLAY_BRIDGE,
                f"{member_address(name)}/{naming.UNDERLAY_PREFIXLEN}",
                replace=True,
            )
        for name in self.names:
            self.start_member(name, wait=False)
        self.wait_healthy(self.names, timeout)

    def start_member(self, name: str, wait: bool = True, timeout: float = 15.0) -> None:
        """Start (or restart after ``kill_member``) one member; it rejoins with its data."""
        if name not in self.names:
            raise LabError(f"lab {self._state.name!r} has no etcd member {name!r}")
        running = self._state.etcd_procs.get(name)
        if running is not None and procs.alive(running):
            raise LabError(f"etcd member {name} already running")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        argv = system.nsenter_argv(self._underlay(), self._argv(name))
        self._state.etcd_procs[name] = procs.spawn(argv, self.log(name), env=env)
        self._state.save()
        if wait:
            self.wait_healthy([name], timeout)

    def kill_member(self, name: str) -> None:
        """SIGKILL one member (as if its machine died); its data stays for a restart."""
        info = self._state.etcd_procs.pop(name, None)
        if info is not None:
            procs.stop(info, timeout=0, kill9=True)
            self._state.save()

    def stop(self) -> None:
        for name in list(self._state.etcd_procs):
            info = self._state.etcd_procs.pop(name)
            procs.stop(info, timeout=10.0)
            self._state.save()

    def leader(self) -> str | None:
        """The member that leads now (asked of each live member), or None."""
        for name in self.names:
            out = self._curl(name, "/v3/maintenance/status", data="{}")
            try:
                status = json.loads(out)
                if status["header"]["member_id"] == status["leader"]:
                    return name
            except (ValueError, KeyError, TypeError):
                continue
        return None

    def _curl(self, name: str, path: str, data: str | None = None, timeout: float = 1.0) -> str:
        argv = ["curl", "-s", "--max-time", str(timeout)]
        pki = self.pki
        if pki is not None:
            argv += ["--cacert", pki.ca, "--cert", pki.client_cert, "--key", pki.client_key]
        if data is not None:
            argv += ["-X", "POST", "-d", data]
        url = f"{self._scheme()}://{self.endpoint(name)}{path}"
        try:
            return subprocess.run(
                system.nsenter_argv(self._underlay(), [*argv, url]),
                capture_output=True,
                text=True,
                timeout=timeout + 5,
            ).stdout
        except subprocess.TimeoutExpired:
            return ""

    def healthy(self, name: str, timeout: float = 1.0) -> bool:
        """True when the member answers ``/health`` with ``"health":"true"`` (needs quorum)."""
        return '"health":"true"' in self._curl(name, "/health", timeout=timeout).replace(" ", "")

    def wait_healthy(self, names: Sequence[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while not self.healthy(name):
                info = self._state.etcd_procs.get(name)
                if info is None:
                    raise LabError(f"etcd member {name} is not running (kill_member?)")
                if not procs.alive(info):
                    raise LabError(f"etcd member {name} exited; log:\n{_tail(self.log(name))}")
                if time.monotonic() >= deadline:
                    raise LabError(
                        f"etcd member {name} not healthy after {timeout:.0f}s; log:\n"
                        f"{_tail(self.log(name))}"
                    )
                time.sleep(0.2)

    def _underlay(self) -> str:
        ul = self._state.ul_netns
        if ul is None:
            raise LabError(f"lab {self._state.name!r} has no underlay")
        return ul

    # ------------------------------------------------------------------ daemons

    def daemon_args(self) -> list[str]:
        return ["--cluster-store", self.store_url]

    def write_daemon_json(self, config_file: str) -> None:
        """Put ``cluster-store-opts`` (TLS files) into a host's daemon.json, keeping the rest
        (and keeping ``cluster-store-opts`` a test wrote there)."""
        opts = self.store_opts()
        if not opts:
            return
        path = Path(config_file)
        data = json.loads(path.read_text()) if path.is_file() else {}
        if "cluster-store-opts" in data:
            return
        data["cluster-store-opts"] = opts
        path.write_text(json.dumps(data, indent=2) + "\n")


def enable_auth(
    netns: str,
    endpoint: str,
    user: str,
    password: str,
    pki: LabPki | None = None,
    prefix: str = "/tether/",
) -> None:
    """Turn on etcd authentication: user ``root`` (random password) and ``user`` with
    read-write access to ``prefix``. Runs in ``netns`` (a child python: gRPC's sockets)."""
    spec = {
        "endpoint": endpoint,
        "user": user,
        "password": password,
        "root_password": secrets.token_hex(8),
        "prefix": prefix,
        "tls": [pki.ca, pki.client_cert, pki.client_key] if pki is not None else None,
    }
    code = "import sys; from tether.lab.etcdcluster import _auth_main; _auth_main(sys.argv[1])"
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(
        system.nsenter_argv(netns, [sys.executable, "-c", code, json.dumps(spec)]),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    if proc.returncode != 0:
        raise LabError(f"enabling etcd authentication failed: {proc.stderr[-2000:]}")


def _auth_main(raw: str) -> None:  # pragma: no cover (runs in the underlay namespace)
    import asyncio
    import importlib

    from aetcd import rpc

    grpc = importlib.import_module("grpc")
    spec = json.loads(raw)

    async def run() -> None:
        if spec["tls"]:
            ca, cert, key = (Path(p).read_bytes() for p in spec["tls"])
            creds = grpc.ssl_channel_credentials(ca, key, cert)
            channel = grpc.aio.secure_channel(spec["endpoint"], creds)
        else:
            channel = grpc.aio.insecure_channel(spec["endpoint"])
        auth = rpc.AuthStub(channel)
        user, prefix = spec["user"], spec["prefix"].encode()
        await auth.UserAdd(rpc.AuthUserAddRequest(name="root", password=spec["root_password"]))
        await auth.RoleAdd(rpc.AuthRoleAddRequest(name="root"))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
        await auth.UserAdd(rpc.AuthUserAddRequest(name=user, password=spec["password"]))
        await auth.RoleAdd(rpc.AuthRoleAddRequest(name=user))
        perm = rpc.Permission(
            permType=rpc.Permission.READWRITE,
            key=prefix,
            range_end=prefix[:-1] + bytes([prefix[-1] + 1]),
        )
        await auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(name=user, perm=perm))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user=user, role=user))
        await auth.AuthEnable(rpc.AuthEnableRequest())
        await channel.close()

    asyncio.run(run())


# ---------------------------------------------------------------------- the single etcd


def single_log(state: LabState) -> str:
    return os.path.join(state.dir, "etcd.log")


def single_healthy(state: LabState, timeout: float = 2.0) -> bool:
    """True when the single etcd answers ``/health`` with ``"health":"true"``."""
    if not state.want_etcd or state.ul_netns is None:
        return False
    url = f"http://{naming.ETCD_ADDRESS}:{naming.ETCD_CLIENT_PORT}/health"
    r = probe.http_get_in_netns(state.ul_netns, url, timeout)
    return r is not None and r[0] == 200 and '"health":"true"' in r[1].replace(" ", "")


def start_single(state: LabState, timeout: float) -> None:
    """Start (or restart after ``stop_single``) the lab's etcd in the underlay namespace."""
    ul = state.ul_netns
    if ul is None:
        raise LabError(f"lab {state.name!r} has no underlay")
    if state.etcd is not None and procs.alive(state.etcd):
        raise LabError(f"lab {state.name!r}: etcd already running")
    if not state.want_etcd:
        state.want_etcd = True
        state.save()
    addr = naming.ETCD_ADDRESS
    links.add_address(
        ul, naming.UNDERLAY_BRIDGE, f"{addr}/{naming.UNDERLAY_PREFIXLEN}", replace=True
    )
    folder = os.path.join(state.dir, "etcd")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    client = f"http://{addr}:{naming.ETCD_CLIENT_PORT}"
    peer = f"http://{addr}:{naming.ETCD_PEER_PORT}"
    argv = system.nsenter_argv(
        ul,
        [
            "/usr/bin/etcd",
            "--name=lab",
            f"--data-dir={folder}/data",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=lab={peer}",
            f"--initial-cluster-token={naming.NETNS_PREFIX}{state.name}",
            "--logger=zap",
            "--log-outputs=stderr",
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    log = single_log(state)
    state.etcd = procs.spawn(argv, log, env=env, cwd=folder)
    state.save()
    deadline = time.monotonic() + timeout
    while not single_healthy(state, timeout=1.0):
        if not procs.alive(state.etcd):
            raise LabError(f"etcd exited before it was ready; log:\n{_tail(log)}")
        if time.monotonic() >= deadline:
            raise LabError(f"etcd not healthy after {timeout:.0f}s; log:\n{_tail(log)}")
        time.sleep(0.1)


def stop_single(state: LabState, timeout: float, kill9: bool = False) -> None:
    if state.etcd is not None:
        procs.stop(state.etcd, timeout=timeout, kill9=kill9)
        state.etcd = None
        state.save()


def _tail(path: str, size: int = 3000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"


__all__ = ["EtcdCluster", "ProcInfo", "enable_auth", "member_address", "member_names"]
