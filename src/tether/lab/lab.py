"""The lab: network namespaces standing for hosts, joined by an underlay bridge.

Layout of a lab called ``l1`` with hosts ``host1`` and ``host2``::

    netns tlab-l1-ul      lo, br0 198.18.0.1/24 (+ 198.18.0.2 for etcd), h11, h12 (veth ends)
    netns tlab-l1-host1   lo, eth0 198.18.0.11/24, default via 198.18.0.1
    netns tlab-l1-host2   lo, eth0 198.18.0.12/24, default via 198.18.0.1

(``--etcd N``, N > 1, or ``--etcd-tls``: members on 198.18.0.2, .3, ...; see
:mod:`tether.lab.etcdcluster`.)

The underlay namespace forwards nothing and has no way out, so lab traffic never leaves the
machine, and the root namespace never sees a lab interface (veths are created inside the
underlay namespace with their peer created directly inside the host namespace).

Each host may run its own tether daemon (joined to the host namespace with ``nsenter --net``
only, so /sys and the cgroup hierarchy stay visible for runc) with its own data root, exec root
and socket under ``/run/tether-lab/<lab>/<host>/``. Everything created is recorded in
``/run/tether-lab/<lab>.json`` and ``down()`` removes exactly that.

Links, addresses and routes are made over netlink (:mod:`tether.lab.links`, pyroute2 with a
socket opened in the namespace by :mod:`tether.linux.nsock`). Three things stay commands
(:mod:`tether.lab.system` says why): ``ip netns add``/``delete`` (iproute2's shared
``/run/netns`` mount), ``nsenter --net`` for whatever runs inside a host, ``umount -l``.
A host's daemon is started and waited for by :mod:`tether.lab.daemons`; ``down`` and
``remove_host`` are :mod:`tether.lab.teardown`.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from tether.lab import daemons as labdaemons
from tether.lab import etcdcluster, links, naming, procs, system, teardown
from tether.lab import state as statefile
from tether.lab.daemons import (
    DEFAULT_DAEMON_TIMEOUT,
    STOP_TIMEOUT,
    default_daemon_cmd,
)
from tether.lab.errors import LabError
from tether.lab.etcdcluster import EtcdCluster
from tether.lab.state import HostInfo, LabState, ProcInfo

DEFAULT_ETCD_TIMEOUT = 15.0

__all__ = ["DEFAULT_DAEMON_TIMEOUT", "STOP_TIMEOUT", "Lab", "LabError", "LabHost", "ProcInfo"]


class LabHost:
    """One simulated host: a network namespace with ``eth0`` on the underlay."""

    def __init__(self, lab: Lab, info: HostInfo) -> None:
        self._lab = lab
        self._info = info

    def __repr__(self) -> str:
        return f"<LabHost {self._lab.name}/{self.name} {self.address} netns={self.netns}>"

    @property
    def lab(self) -> Lab:
        return self._lab

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def index(self) -> int:
        return self._info.index

    @property
    def netns(self) -> str:
        """Name of the host's network namespace (a file under /run/netns)."""
        return self._info.netns

    @property
    def netns_path(self) -> str:
        return naming.netns_path(self._info.netns)

    @property
    def address(self) -> str:
        """The host's underlay IPv4 address (on its ``eth0``)."""
        return self._info.address

    @property
    def cidr(self) -> str:
        return f"{self._info.address}/{naming.UNDERLAY_PREFIXLEN}"

    @property
    def ifname(self) -> str:
        return naming.HOST_IFNAME

    @property
    def underlay_port(self) -> str:
        """The underlay bridge's port towards this host (in the lab's underlay namespace)."""
        return self._info.ul_ifname

    @property
    def dir(self) -> str:
        return self._info.dir

    @property
    def data_root(self) -> str:
        return self._info.data_root

    @property
    def exec_root(self) -> str:
        return self._info.exec_root

    @property
    def socket(self) -> str:
        """Path of the host daemon's API socket."""
        return self._info.socket

    @property
    def docker_host(self) -> str:
        return f"unix://{self._info.socket}"

    @property
    def config_file(self) -> str:
        """The daemon's ``--config-file`` (absent by default; write it, then restart)."""
        return self._info.config_file

    @property
    def daemon_log(self) -> str:
        return self._info.daemon_log

    @property
    def daemon_pid(self) -> int | None:
        d = self._info.daemon
        return d.pid if d is not None and procs.alive(d) else None

    def daemon_log_tail(self, lines: int = 30) -> str:
        return labdaemons.tail(self._info.daemon_log, lines)

    def docker_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment (a copy of ``base`` or os.environ) pointing docker/tether at this host."""
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.docker_host
        env["TETHER_HOST"] = self.docker_host
        return env

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` wrapped to run inside this host's network namespace."""
        return system.nsenter_argv(self.netns, cmd)

    def run(self, cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` of ``cmd`` inside the host namespace (network namespace only)."""
        return subprocess.run(self.argv(cmd), **kw)

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.argv(cmd), **kw)


class Lab:
    """A lab built from (and recorded in) a state file. Build one with :meth:`up`."""

    def __init__(self, state: LabState) -> None:
        self._state = state

    def __repr__(self) -> str:
        return f"<Lab {self.name} hosts={list(self._state.hosts)}>"

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # ----------------------------------------------------------------- lookup

    @classmethod
    def load(cls, name: str) -> Lab:
        return cls(statefile.load(name))

    @classmethod
    def list(cls) -> builtins.list[str]:
        """Names of the labs that have a state file."""
        return statefile.list_names()

    @classmethod
    def exists(cls, name: str) -> bool:
        return statefile.exists(naming.check_lab_name(name))

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def dir(self) -> str:
        return self._state.dir

    @property
    def underlay_netns(self) -> str:
        return self._state.ul_netns or naming.underlay_netns(self.name)

    @property
    def gateway(self) -> str:
        return naming.GATEWAY_ADDRESS

    @property
    def daemons(self) -> bool:
        return self._state.daemons

    @property
    def hosts(self) -> dict[str, LabHost]:
        return {n: LabHost(self, h) for n, h in self._state.hosts.items()}

    def host(self, name: str) -> LabHost:
        try:
            return LabHost(self, self._state.hosts[name])
        except KeyError:
            raise LabError(f"lab {self.name!r} has no host {name!r}") from None

    @property
    def etcd_cluster(self) -> EtcdCluster | None:
        """The lab's etcd cluster (``--etcd N`` with N > 1, or ``--etcd-tls``), else None."""
        return EtcdCluster(self._state) if self._state.etcd_members else None

    @property
    def etcd_address(self) -> str | None:
        return naming.ETCD_ADDRESS if self._state.want_etcd else None

    @property
    def etcd_endpoint(self) -> str | None:
        """``IP:2379`` of the lab's etcd (``IP:2379,IP:2379,...`` for a cluster), or None."""
        cluster = self.etcd_cluster
        if cluster is not None:
            return ",".join(cluster.endpoints)
        if not self._state.want_etcd:
            return None
        return f"{naming.ETCD_ADDRESS}:{naming.ETCD_CLIENT_PORT}"

    @property
    def etcd_url(self) -> str | None:
        ep = self.etcd_endpoint
        return f"http://{ep}" if ep else None

    # ----------------------------------------------------------------- building

    @classmethod
    def up(
        cls,
        name: str,
        hosts: Iterable[str],
        etcd: bool | int = False,
        daemons: bool = True,
        *,
        daemon_cmd: Sequence[str] | None = None,
        daemon_timeout: float = DEFAULT_DAEMON_TIMEOUT,
        etcd_tls: bool = False,
    ) -> Lab:
        """Build a lab; on any failure everything built so far is removed again.

        ``etcd``: True or 1 for the single etcd, N > 1 (or any N with ``etcd_tls``) for an
        etcd cluster (:mod:`tether.lab.etcdcluster`). ``daemon_cmd`` replaces
        ``[python, -m, tether]`` (the lab appends ``daemon -H ...``).
        """
        single, members = etcdcluster.plan(etcd, etcd_tls)
        naming.check_lab_name(name)
        host_names = [naming.check_host_name(h) for h in hosts]
        if len(set(host_names)) != len(host_names):
            raise LabError(f"duplicate host names in {host_names}")
        if statefile.exists(name):
            raise LabError(f"lab {name!r} already exists (tether lab down {name})")
        ldir = naming.lab_dir(name)
        if ldir.exists():
            raise LabError(f"{ldir} exists but lab {name!r} has no state file; remove it first")
        for h in host_names:
            sock = HostInfo(h, 0, "", "", "", str(naming.host_dir(name, h))).socket
            if len(sock.encode()) > naming.MAX_SOCKET_PATH:
                raise LabError(f"socket path too long for a unix socket: {sock}")
        ldir.mkdir(parents=True, mode=0o755)
        st = LabState(
            name=name,
            dir=str(ldir),
            daemons=daemons,
            daemon_cmd=list(daemon_cmd) if daemon_cmd is not None else default_daemon_cmd(),
            want_etcd=single,
            etcd_members=members,
            etcd_tls=etcd_tls,
        )
        st.save()
        lab = cls(st)
        try:
            lab._make_underlay()
            if single:
                lab.start_etcd()
            cluster = lab.etcd_cluster
            if cluster is not None:
                cluster.start(DEFAULT_ETCD_TIMEOUT)
            for h in host_names:
                lab._make_host(h)
            if daemons:
                lab._start_daemons(host_names, daemon_timeout)
        except BaseException:
            try:
                lab.down()
            except Exception as exc:  # keep the first error; report the cleanup one
                print(f"tether lab: cleanup after failed up: {exc}", file=sys.stderr)
            raise
        return lab

    def _make_underlay(self) -> None:
        ul = naming.underlay_netns(self.name)
        system.netns_add(ul)
        self._state.ul_netns = ul
        self._state.save()
        br = naming.UNDERLAY_BRIDGE
        links.link_up(ul, "lo")
        links.add_bridge(ul, br)
        links.add_address(ul, br, f"{naming.GATEWAY_ADDRESS}/{naming.UNDERLAY_PREFIXLEN}")
        links.link_up(ul, br)

    def _free_index(self) -> int:
        used = {h.index for h in self._state.hosts.values()}
        for i in range(naming.FIRST_HOST_INDEX, naming.LAST_HOST_INDEX + 1):
            if i not in used:
                return i
        raise LabError(f"lab {self.name!r} is full")

    def _make_host(self, name: str) -> LabHost:
        naming.check_host_name(name)
        if name in self._state.hosts:
            raise LabError(f"lab {self.name!r} already has a host {name!r}")
        ul = self._state.ul_netns
        if ul is None:
            raise LabError(f"lab {self.name!r} has no underlay")
        index = self._free_index()
        ns = naming.host_netns(self.name, name)
        system.netns_add(ns)
        info = HostInfo(
            name=name,
            index=index,
            netns=ns,
            address=naming.host_address(index),
            ul_ifname=naming.underlay_ifname(index),
            dir=str(naming.host_dir(self.name, name)),
        )
        self._state.hosts[name] = info
        self._state.save()
        for d in (info.dir, info.data_root, info.exec_root):
            os.makedirs(d, mode=0o711, exist_ok=True)
        eth = naming.HOST_IFNAME
        links.add_veth(ul, info.ul_ifname, eth, ns)
        links.set_master_up(ul, info.ul_ifname, naming.UNDERLAY_BRIDGE)
        links.link_up(ns, "lo")
        links.add_address(ns, eth, f"{info.address}/{naming.UNDERLAY_PREFIXLEN}")
        links.link_up(ns, eth)
        links.add_default_route(ns, naming.GATEWAY_ADDRESS)
        return LabHost(self, info)

    def add_host(self, name: str, daemon: bool | None = None) -> LabHost:
        """Add a host (with a daemon when ``daemon`` or, if None, when the lab has daemons)."""
        host = self._make_host(name)
        if self._state.daemons if daemon is None else daemon:
            self._start_daemons([name], DEFAULT_DAEMON_TIMEOUT)
        return host

    def remove_host(self, name: str) -> None:
        """Hard removal, like a host dying: SIGKILL everything in it, unmount, delete netns."""
        info = self._state.hosts.get(name)
        if info is None:
            raise LabError(f"lab {self.name!r} has no host {name!r}")
        problems = teardown.teardown_host(self._state, info, kill9=True)
        if problems:
            raise LabError(f"removing host {name!r}: " + "; ".join(problems))

    # ----------------------------------------------------------------- daemons
    # (their command line, environment, start and wait: tether.lab.daemons)

    def _start_daemons(self, names: Iterable[str], timeout: float) -> None:
        labdaemons.start(self._state, names, timeout)

    def start_daemon(self, host: str, timeout: float = DEFAULT_DAEMON_TIMEOUT) -> None:
        self.host(host)
        self._start_daemons([host], timeout)

    def stop_daemon(self, host: str, kill9: bool = False) -> None:
        """Stop a host's daemon (SIGTERM then SIGKILL; only SIGKILL when ``kill9``).

        Only the daemon's process group is signalled: containers it started in their own
        sessions (conmon) keep running, as after a daemon crash.
        """
        self.host(host)
        labdaemons.stop(self._state, host, kill9)

    def restart_daemon(
        self, host: str, kill9: bool = False, timeout: float = DEFAULT_DAEMON_TIMEOUT
    ) -> None:
        self.stop_daemon(host, kill9=kill9)
        self._start_daemons([host], timeout)

    # ----------------------------------------------------------------- etcd
    # (the single etcd of ``--etcd``; a cluster is ``etcd_cluster``: tether.lab.etcdcluster)

    @property
    def etcd_log(self) -> str:
        return etcdcluster.single_log(self._state)

    def etcd_healthy(self, timeout: float = 2.0) -> bool:
        """True when etcd answers ``/health`` with ``"health":"true"`` on the underlay."""
        return etcdcluster.single_healthy(self._state, timeout)

    def start_etcd(self, timeout: float = DEFAULT_ETCD_TIMEOUT) -> None:
        """Start (or restart after :meth:`stop_etcd`) the lab's etcd in the underlay namespace."""
        etcdcluster.start_single(self._state, timeout)

    def stop_etcd(self, kill9: bool = False) -> None:
        etcdcluster.stop_single(self._state, STOP_TIMEOUT, kill9)

    # ----------------------------------------------------------------- teardown
    # (each step attempted, failures collected: tether.lab.teardown)

    def down(self) -> None:
        """Remove everything the lab created. Idempotent; keeps going past failures and
        raises ``LabError`` at the end (keeping the state file) if something is left."""
        teardown.down(self._state)

    @classmethod
    def destroy(cls, name: str) -> bool:
        """``down`` the lab called ``name`` if it exists; False when there was none."""
        if not statefile.exists(naming.check_lab_name(name)):
            return False
        cls.load(name).down()
        return True
