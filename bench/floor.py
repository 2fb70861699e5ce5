"""The floor of `run -d` → TCP reachable: the kernel and runtime work done by hand.

    sudo .venv/bin/python bench/floor.py [-n 10] [--netns /run/netns/X] [--json]

What a `run -d --network NET --ip IP alpine httpd` needs, and nothing else: a network
namespace (``unshare(CLONE_NEWNET)`` in a thread, bind-mounted on a file), a veth pair with
its peer created in it as ``eth0``, the host end on a bridge and up, inside: ``lo`` and
``eth0`` up, the address, the default route; the ``hosts``, ``hostname`` and
``resolv.conf`` files; an overlay mount of the image as the root; ``config.json`` from
tether's own ``oci.build_spec`` (the same mounts, namespaces and cgroup); then conmon with
tether's arguments (``--api-version 1``, sync and start pipes), which runs ``runc create``,
then ``runc start``; the clock stops when a TCP connect from the host namespace to IP:80
works (polled every ~2 ms, as bench/netns.py does for the engines). No store, no API, no
CLI: an engine's run-until-reachable divided by this is its overhead factor.

Netlink is pyroute2's (as tether's), in this process. Everything lives in the namespace
``--netns`` (a lab host; bench/run.py passes its own) or, without it, in a namespace this
process makes for itself; the bridge is ``flbr0`` with 172.31.0.1/16, the containers
172.31.1.N. Each sample's parts are timed (``netns``, ``veth``, ``inside``, ``files``,
``create``, ``start``, ``reach``) and removed after the sample (not timed).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not __package__:  # run as a script: this checkout's bench and tether
    sys.path[:0] = [os.path.join(ROOT, "src"), ROOT]

from bench.netns import setns, wait_tcp  # noqa: E402
from tether.linux.lazypkg import bare_package  # noqa: E402
from tether.runtime import oci  # noqa: E402

CLONE_NEWNET = 0x40000000
MS_BIND, MS_PRIVATE, MNT_DETACH = 0x1000, 1 << 18, 2
_libc = ctypes.CDLL(None, use_errno=True)
RUNC, CONMON = "/usr/sbin/runc", "/usr/bin/conmon"
BRIDGE, NET = "flbr0", "172.31"
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/var/www"]
PHASES = ("netns", "veth", "inside", "files", "create", "start", "reach")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = [None if x is None else x.encode() for x in (src, dst, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {dst}")


def umount(path: str) -> None:
    _libc.umount2(path.encode(), MNT_DETACH)


def new_netns(path: str) -> None:
    """A network namespace bound on ``path`` (made in a short-lived thread: unshare only
    moves the calling thread)."""
    err: list[BaseException] = []

    def make() -> None:
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare")
            Path(path).touch()
            mount("/proc/thread-self/ns/net", path, None, MS_BIND, None)
        except BaseException as exc:
            err.append(exc)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if err:
        raise err[0]


@contextlib.contextmanager
def inside(ns_path: str) -> Any:
    """This thread in ``ns_path`` for the block."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
        yield
    finally:
        setns(own)
        os.close(fd)
        os.close(own)


class Floor:
    def __init__(self, work: str, tarball: str, host_ns: str | None) -> None:
        bare_package("pyroute2")
        from pyroute2.iproute.linux import IPRoute

        self.IPRoute = IPRoute
        self.work = Path(work)
        self.host_ns = host_ns
        self.image = self.work / "image"
        self.nsdir = self.work / "ns"
        self.runc_root = self.work / "runc"
        for d in (self.image, self.nsdir, self.runc_root, self.work / "exits", self.work / "socks"):
            d.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xf", tarball, "-C", str(self.image)], check=True)
        # the image tarball is a docker-save/rootfs tar: find the rootfs (the dir with bin/)
        self.lower = self._rootfs(self.image)
        mount(str(self.nsdir), str(self.nsdir), None, MS_BIND, None)
        mount(None, str(self.nsdir), None, MS_PRIVATE, None)
        with self._host():
            self.ipr = IPRoute()
            self.ipr.link("add", ifname=BRIDGE, kind="bridge")
            self.br = self.ipr.link_lookup(ifname=BRIDGE)[0]
            self.ipr.addr("add", index=self.br, address=f"{NET}.0.1", prefixlen=16)
            self.ipr.link("set", index=self.br, state="up")

    @staticmethod
    def _rootfs(d: Path) -> Path:
        if (d / "bin").is_dir():
            return d
        for layer in sorted(d.rglob("layer.tar")):
            out = layer.parent / "rootfs"
            out.mkdir(exist_ok=True)
            subprocess.run(["tar", "-xf", str(layer), "-C", str(out)], check=True)
            if (out / "bin").is_dir():
                return out
        raise SystemExit(f"floor: no root filesystem in the image tarball ({d})")

    def _host(self) -> Any:
        return inside(self.host_ns) if self.host_ns else contextlib.nullcontext()

    def one(self, i: int) -> dict[str, float]:
        """One container from nothing to reachable: the parts' ms, ``total`` among them."""
        cid = f"floor{os.getpid()}x{i}"
        ip = f"{NET}.1.{10 + i % 240}"
        ns = str(self.nsdir / cid)
        d = self.work / cid
        marks: list[float] = [time.monotonic()]
        with self._host():
            new_netns(ns)
            marks.append(time.monotonic())
            nsfd = os.open(ns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                host_if = f"flv{i}"
                self.ipr.link("add", ifname=host_if, kind="veth",
                              peer={"ifname": "eth0", "net_ns_fd": nsfd})  # fmt: skip
                idx = self.ipr.link_lookup(ifname=host_if)[0]
                self.ipr.link("set", index=idx, master=self.br, state="up")
            finally:
                os.close(nsfd)
            marks.append(time.monotonic())
            with inside(ns):
                ipr = self.IPRoute()
            try:
                ipr.link("set", index=1, state="up")
                eth0 = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=eth0, address=ip, prefixlen=16)
                ipr.link("set", index=eth0, state="up")
                ipr.route("add", dst="0.0.0.0/0", gateway=f"{NET}.0.1")
            finally:
                ipr.close()
            marks.append(time.monotonic())
            self._files(cid, d, ns)
            marks.append(time.monotonic())
            self._conmon(cid, d)
            marks.append(time.monotonic())
            self._runc("start", cid)
            marks.append(time.monotonic())
            t = wait_tcp(self.host_ns or "/proc/self/ns/net", ip, 80)
            if t is None:
                raise RuntimeError(f"floor: {ip}:80 not reachable in 15 s")
            marks.append(t)
        spans = zip(PHASES, marks[:-1], marks[1:], strict=True)
        out = {name: (b - a) * 1000 for name, a, b in spans}
        out["total"] = (marks[-1] - marks[0]) * 1000
        return out

    def _files(self, cid: str, d: Path, ns: str) -> None:
        """The sandbox files, the overlay root and config.json (tether's spec builder)."""
        for sub in ("upper", "wk", "root"):
            (d / sub).mkdir(parents=True)
        (d / "hostname").write_text(cid[:12] + "\n")
        (d / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
                                 f"{NET}.1.10\t{cid[:12]}\n")  # fmt: skip
        (d / "resolv.conf").write_text("nameserver 127.0.0.11\noptions ndots:0\n")
        opts = f"lowerdir={self.lower},upperdir={d / 'upper'},workdir={d / 'wk'}"
        mount("overlay", str(d / "root"), "overlay", 0, opts)
        spec = oci.build_spec(
            args=HTTPD, rootfs=str(d / "root"), hostname=cid[:12], netns_path=ns,
            cgroups_path=f"/tetherfloor/{cid}", hosts_path=d / "hosts",
            resolv_conf_path=d / "resolv.conf", hostname_path=d / "hostname",
            env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        )  # fmt: skip
        oci.write_bundle(d, spec)

    def _conmon(self, cid: str, d: Path) -> None:
        """conmon runs ``runc create`` (tether's arguments and pipes); wait for its pid."""
        sync_p, sync_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        start_p, start_c = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = [
            CONMON, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid, "-r", RUNC,
            "--runtime-arg", "--root", "--runtime-arg", str(self.runc_root), "-b", str(d),
            "-p", str(d / "pidfile"), "-P", str(d / "conmon.pid"),
            "-l", f"k8s-file:{d / 'container.log'}", "--exit-dir", str(self.work / "exits"),
            "--socket-dir-path", str(self.work / "socks"), "--log-level", "error",
        ]  # fmt: skip
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "_OCI_SYNCPIPE": str(sync_c.fileno()),
               "_OCI_STARTPIPE": str(start_c.fileno())}  # fmt: skip
        try:
            start_p.send(b"0")
            fds = (sync_c.fileno(), start_c.fileno())
            subprocess.run(args, env=env, pass_fds=fds, start_new_session=True,
                           stdin=subprocess.DEVNULL, check=True)  # fmt: skip
            sync_c.close()
            sync_p.settimeout(60)
            reply = json.loads(sync_p.recv(65536))
            if int(reply["data"]) < 0:
                raise RuntimeError(f"floor: runc create failed: {reply}")
        finally:
            for s in (sync_p, sync_c, start_p, start_c):
                s.close()

    def _runc(self, *args: str) -> None:
        subprocess.run([RUNC, "--root", str(self.runc_root), *args], check=True,
                       stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip

    def remove(self, i: int) -> None:
        """Undo sample ``i`` (not timed)."""
        cid = f"floor{os.getpid()}x{i}"
        d = self.work / cid
        subprocess.run([RUNC, "--root", str(self.runc_root), "delete", "--force", cid],
                       capture_output=True)  # fmt: skip
        with contextlib.suppress(OSError, ValueError):
            pid = int((d / "conmon.pid").read_text())
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.01)
        umount(str(d / "root"))
        umount(str(self.nsdir / cid))
        with contextlib.suppress(OSError):
            (self.nsdir / cid).unlink()
        shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        with self._host(), contextlib.suppress(Exception):
            self.ipr.link("del", index=self.br)
            self.ipr.close()
        umount(str(self.nsdir))
        with contextlib.suppress(OSError):
            os.rmdir("/sys/fs/cgroup/tetherfloor")
        shutil.rmtree(self.work, ignore_errors=True)


def measure(n: int, tarball: str, host_ns: str | None) -> list[dict[str, float]]:
    work = tempfile.mkdtemp(prefix="tether-floor-", dir="/run")
    floor = Floor(work, tarball, host_ns)
    out = []
    try:
        for i in range(n):
            try:
                out.append(floor.one(i))
            finally:
                floor.remove(i)
    finally:
        floor.close()
    return out


def summary(samples: list[dict[str, float]]) -> str:
    lines = ["| part | median ms | min | max |", "|---|---|---|---|"]
    for name in (*PHASES, "total"):
        v = [s[name] for s in samples]
        lines.append(f"| {name} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--netns", help="namespace file to work in (default: a new one)")
    ap.add_argument("--image", help="busybox image tarball (default: build one)")
    ap.add_argument("--json", action="store_true", help="last line: the samples as JSON")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("floor: needs root", file=sys.stderr)
        return 2
    tarball = a.image
    tmp = None
    if tarball is None:
        tmp = tempfile.mkdtemp(prefix="tether-floor-img-")
        tarball = os.path.join(tmp, "busybox.tar")
        subprocess.run(["sh", os.path.join(ROOT, "scripts", "build-busybox-image.sh"), tarball],
                       check=True, capture_output=True)  # fmt: skip
    if a.netns is None:  # a namespace of our own: nothing touches the machine's network
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
    try:
        samples = measure(a.n, tarball, a.netns)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(summary(samples))
    if a.json:
        print(json.dumps(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
