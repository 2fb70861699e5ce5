"""One dedicated OS thread for per-thread kernel context (network namespace, working directory).

Namespace work that must happen *inside* a sandbox's network namespace (create the namespace,
open the DNS listener at 127.0.0.11, open a netlink socket for the sandbox) needs a thread
that is in that namespace while it creates the object: a socket belongs to the namespace it
was made in for its whole life, whichever thread later uses it. ``setns()`` and ``unshare()``
change the namespace of the calling thread only.

Earlier versions forked a helper child per job (no daemon thread ever changed namespace).
A fork copies the daemon's page tables and makes every page it writes afterwards copy-on-write,
so its cost grew with the daemon's memory: 15 ms per start at 10 containers, 28 ms at 500,
which made per-container start time grow with the number of containers (bench/FINDINGS.md).
This is the design Docker uses with a locked OS thread: a thread that runs only these jobs
switches in, does the few system calls of the job, and switches back to the daemon's namespace
before it takes the next one (~50 µs per job here, flat at any daemon size).

Safety rules: the thread runs only the small job functions of this module; each job switches
back before it returns; if switching back ever fails, the thread retires (it exits, and its
namespace reference dies with it) and the next job starts a fresh thread. No daemon code, no
event loop and no library callback ever runs on this thread.

The thread also has a filesystem context of its own (``unshare(CLONE_FS)`` at its start), so
it may change its working directory and enter a fresh mount namespace: it starts each
container's runtime (conmon, then runc) in a mount namespace of the container's own, which
holds that container's root filesystem and namespace file only (:class:`PrivateMounts`).

The thread is owned by :class:`NetnsThread`; ``close()`` stops it. The module keeps one
default instance (:func:`default`) that the daemon shuts down on exit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import logging
import os
import queue
import re
import select
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from tether.linux.mountids import MountIds
from tether.linux.sysctl import ProcSysctl, disable_ipv6

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_FS = 0x00000200
_MS_REC = 16384
_MS_SLAVE = 1 << 19
_MNT_DETACH = 2
_MS_BIND = 4096
# Linux value, missing from the socket module on some builds.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_setns.restype = ctypes.c_int
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_unshare.restype = ctypes.c_int
_mount = _libc.mount
_mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_mount.restype = ctypes.c_int
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_umount2.restype = ctypes.c_int

T = TypeVar("T")
log = logging.getLogger("tether.nsthread")


_Queue = queue.SimpleQueue[tuple[Callable[[int], object], Future[object]] | None]


class _Stranded(Exception):
    """The thread could not return to the daemon's namespace: it must retire."""


@dataclass(frozen=True, slots=True)
class SocketSpec:
    """One socket to open inside a namespace.

    ``bind`` is the address tuple for ``socket.bind`` (``("127.0.0.11", 53)``), or None to
    leave the socket unbound (a netlink socket autobinds at its first send).
    ``freebind`` sets IP_FREEBIND, so the bind succeeds even before the address is up
    (e.g. while ``lo`` is still down); packets flow once it is.
    ``reuseaddr`` sets SO_REUSEADDR (useful for TCP listeners).
    """

    family: int
    type: int
    bind: tuple[object, ...] | None
    freebind: bool = False
    reuseaddr: bool = False
    proto: int = 0


def _os_error(what: str) -> OSError:
    err = ctypes.get_errno() or errno_mod.EIO
    return OSError(err, f"{what}: {os.strerror(err)}")


class NetnsThread:
    """The namespace thread and its job queue (see the module docs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: _Queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.own_cwd = False  # set by the thread once its working directory is its own
        self._local = threading.local()  # the thread's own descriptors (home mount namespace)

    # ---- the thread ---------------------------------------------------------------------
    def _start_locked(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._main, args=(self._queue,), name="netns", daemon=True
            )
            self._thread.start()

    def _main(self, jobs: _Queue) -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._local.home_mnt = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        # A private working directory (and root): chdir on this thread then moves no other
        # thread, and it may enter another mount namespace (setns needs an unshared fs).
        self.own_cwd = _unshare(CLONE_FS) == 0
        try:
            while True:
                item = jobs.get()
                if item is None:
                    return
                fn, fut = item
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    fut.set_result(fn(home))
                except _Stranded as exc:
                    fut.set_exception(OSError(errno_mod.EIO, str(exc)))
                    self._retire(jobs)
                    return
                except BaseException as exc:  # handed to the caller
                    fut.set_exception(exc)
        finally:
            os.close(home)
            os.close(self._local.home_mnt)
            watch = getattr(self._local, "watch", None)
            if watch is not None:
                watch.close()
                if self._local.base >= 0:
                    os.close(self._local.base)

    def _retire(self, jobs: _Queue) -> None:
        # A stranded thread takes no further job: the waiting ones go to a fresh thread.
        with self._lock:
            self._queue = queue.SimpleQueue()
            self._thread = None
            while True:
                try:
                    item = jobs.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    self._queue.put(item)
            if not self._closed:
                self._start_locked()

    def submit(self, fn: Callable[[int], T]) -> Future[T]:
        """Run ``fn(home_ns_fd)`` on the namespace thread; it must switch back before returning."""
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise OSError(errno_mod.ESHUTDOWN, "the namespace thread is closed")
            self._start_locked()
            self._queue.put((fn, fut))  # type: ignore[arg-type]
        return fut

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
            self._thread = None
            self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # ---- jobs -----------------------------------------------------------------------------
    def sockets_in_netns(self, ns_path: str, specs: Sequence[SocketSpec]) -> list[socket.socket]:
        """Create (and bind) the sockets of ``specs`` inside the namespace at ``ns_path``.

        Blocks the caller until done (~50 µs when the thread is idle). Raises ``OSError`` with
        the failing step's errno (``FileNotFoundError`` when ``ns_path`` does not exist).
        """
        return self.submit_sockets(ns_path, specs).result()

    def submit_sockets(
        self, ns_path: str, specs: Sequence[SocketSpec]
    ) -> Future[list[socket.socket]]:
        """As :meth:`sockets_in_netns`, but returns the job's future (for ``wrap_future``).

        No specs: a done future with no sockets. More than 64: ``ValueError``.
        """
        todo = list(specs)
        if len(todo) > 64:
            raise ValueError("too many sockets for one call")
        if not todo:
            done: Future[list[socket.socket]] = Future()
            done.set_result([])
            return done
        ns_fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)

        def job(home: int) -> list[socket.socket]:
            try:
                return _make_sockets(home, ns_fd, todo)
            finally:
                os.close(ns_fd)

        try:
            return self.submit(job)
        except BaseException:
            os.close(ns_fd)
            raise

    def submit_spawn_isolated(
        self, argv: Sequence[str], mounts: PrivateMounts, **run: Any
    ) -> Future[int]:
        """Run ``argv`` to completion in a fresh mount namespace prepared by ``mounts``.

        See :class:`PrivateMounts`. ``run`` is passed to ``subprocess.run`` (stdin, stdout,
        stderr, env, pass_fds, start_new_session). The job's future gives the exit status, or
        ``OSError`` when the namespace cannot be prepared (nothing is left behind: the
        namespace dies with its last process) or the program cannot be started.
        """
        return self.submit(lambda _home: self._spawn_isolated(argv, mounts, run))

    def _spawn_isolated(
        self, argv: Sequence[str], mounts: PrivateMounts, run: dict[str, Any]
    ) -> int:
        if not self.own_cwd:
            raise OSError(errno_mod.ENOTSUP, "the namespace thread shares its filesystem context")
        ns_fd = -1
        if mounts.netns_path:
            ns_fd = os.open(mounts.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                self._enter_base(mounts.netns_dir)
                if _unshare(CLONE_NEWNS) != 0:
                    raise _os_error("cannot create a mount namespace")
                return _in_private_mounts(argv, mounts, ns_fd, run)
            finally:
                self._home_mounts()
        finally:
            if ns_fd >= 0:
                os.close(ns_fd)

    def submit_popen_in_base(
        self, argv: Sequence[str], **popen: Any
    ) -> Future[subprocess.Popen[bytes]]:
        """Start ``argv`` in the runtime's base mount namespace; the future gives the process.

        For runc's short commands (``start``, ``kill``, ``delete``, ``state``): each reads
        ``/proc/self/mountinfo`` once, and the daemon's table grows with every container on
        the machine (tether's namespace files, other engines' roots and namespace files). The
        base namespace holds none of those (see :meth:`_base_mounts`); runc finds its state
        directory and the cgroup tree there as in the daemon's. The job only starts the
        program (vfork + exec, ~1 ms): the caller waits for it on its own thread, so this
        thread is never held for a program's run. Where the base cannot be made, the program
        starts in the daemon's namespace.
        """
        return self.submit(lambda _home: self._popen_in_base(argv, popen))

    def _popen_in_base(self, argv: Sequence[str], popen: dict[str, Any]) -> subprocess.Popen[bytes]:
        # Where the base cannot be had, the program starts in the daemon's namespace (slower
        # at scale, same result): runc must be able to stop and delete in any case.
        if self.own_cwd:
            try:
                self._enter_base(None)
            except OSError as exc:
                self._home_mounts()
                log.warning("runtime base mount namespace unavailable: %s", exc)
            else:
                try:
                    return subprocess.Popen(list(argv), **popen)
                finally:
                    self._home_mounts()
        return subprocess.Popen(list(argv), **popen)

    def _enter_base(self, netns_dir: str | None) -> None:
        """Switch this thread to the runtime's base mount namespace, rid of any overlay or
        namespace-file mount that propagated into it; the caller goes home (``_home_mounts``)."""
        if _setns(self._base_mounts(netns_dir), CLONE_NEWNS) != 0:
            raise _os_error("cannot enter the runtime's base mount namespace")
        _detach_foreign()

    def _home_mounts(self) -> None:
        if _setns(self._local.home_mnt, CLONE_NEWNS) != 0:
            raise _Stranded(str(_os_error("cannot return to the daemon's mount namespace")))
        os.chdir("/")

    def _base_mounts(self, netns_dir: str | None) -> int:
        """The runtime's base mount namespace (a descriptor), made at first use.

        A copy of the daemon's (``rslave``) without any overlay or namespace-file mount:
        other engines' containers on the machine (Docker's, in the benchmark) add those to the
        host's table too, and runc would read them at every start. Mounts the host gets later
        do not appear in it (this machine's mounts do not propagate), so it is made again when
        the host's other mounts change (``poll`` on the daemon's mountinfo says when to look).
        """
        loc = self._local
        if getattr(loc, "watch", None) is None:
            loc.watch = open("/proc/self/mountinfo", "rb")  # noqa: SIM115 - the thread's, closed in _main
            loc.ids = MountIds()
            loc.base = -1
            loc.kept = None
            loc.netns_dir = None
        if netns_dir is None:  # any base will do (the caller needs no sandbox file)
            netns_dir = loc.netns_dir
        other_dir = netns_dir != loc.netns_dir
        changed = bool(select.select([], [], [loc.watch], 0)[2]) or loc.base < 0 or other_dir
        if changed:
            # (polling itself clears the "changed" mark) listmount/statmount where the kernel
            # has them (no text: flat at any number of mounts), else the mountinfo text
            kept: frozenset[object] | None = loc.ids.kept()
            if kept is None:
                loc.watch.seek(0)
                kept = frozenset(
                    p for p, fstype in mount_points(loc.watch.read()) if fstype not in _FOREIGN
                )
            if kept != loc.kept or loc.base < 0 or other_dir:
                self._make_base(netns_dir)
                loc.kept = kept
                loc.netns_dir = netns_dir
        return int(loc.base)

    def _make_base(self, netns_dir: str | None) -> None:
        loc = self._local
        if _unshare(CLONE_NEWNS) != 0:
            raise _os_error("cannot create a mount namespace")
        try:
            if _mount(None, b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
                raise _os_error("cannot make the runtime's mounts private")
            with open("/proc/thread-self/mountinfo", "rb") as f:
                table = f.read()
            _detach_foreign(table)
            if netns_dir:
                _detach_tree(netns_dir)
            fd = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            self._home_mounts()
        if loc.base >= 0:
            os.close(loc.base)
        loc.base = fd

    def submit_sysctl(self, ns_path: str, key: str, value: str) -> Future[bool]:
        """Write ``value`` to ``/proc/sys/<key>`` as seen from the namespace at ``ns_path``
        (``net/...`` settings are per network namespace, resolved at open time). The future
        gives False when the setting does not exist there (its module is not loaded)."""
        return self.submit(lambda home: _write_sysctl(home, ns_path, key, value))

    def submit_link_up(self, ns_path: str, ifname: str) -> Future[None]:
        """Set ``ifname`` up in the namespace at ``ns_path`` with the ``SIOCSIFFLAGS`` ioctl
        (for ``lo`` of a new sandbox: ~0.1 ms, where a netlink socket made there with
        pyroute2's setup, a lookup and a set took ~3 ms of every container start)."""
        return self.submit(lambda home: _link_up(home, ns_path, ifname))

    def submit_new_netns(self, path: str) -> Future[None]:
        """Make a fresh network namespace and bind-mount it on the existing file ``path``.

        The future raises ``OSError`` (EINVAL when ``path`` sits on a mount with shared
        propagation).
        """
        return self.submit(lambda home: _make_netns(home, path))


@dataclass(frozen=True, slots=True)
class OverlayMount:
    """An overlayfs to mount on ``target``; layer, upper and work paths relative to ``cwd``."""

    cwd: str
    lower: tuple[str, ...]
    upper: str
    work: str
    target: str


@dataclass(frozen=True, slots=True)
class PrivateMounts:
    """The mount namespace a container's runtime (conmon, runc) is started in.

    A copy of the runtime's base namespace (the daemon's, ``rslave``, without any overlay or
    namespace-file mount: no other container's root or sandbox file, tether's or another
    engine's; ``netns_dir`` is detached there), where only ``netns_path``, the container's
    own, is bound again at the same path and the container's root filesystem (``overlay``) is
    mounted. runc reads ``/proc/self/mountinfo`` several
    times per start, and reading it costs more than linearly in the number of mounts
    (bench/FINDINGS.md): with these mounts private to each container, what runc reads stays
    the same size at any number of containers. The namespace lives as long as a process is
    in it (conmon, for the container's life), so the overlay goes away by itself when the
    container's monitor exits.
    """

    netns_dir: str | None = None
    netns_path: str | None = None
    overlay: OverlayMount | None = None


_FOREIGN = frozenset({"overlay", "nsfs"})


def mount_points(table: bytes) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of each line of a mountinfo text (octal escapes undone)."""
    out: list[tuple[str, str]] = []
    for line in table.splitlines():
        left, sep, right = line.partition(b" - ")
        fields = left.split(b" ")
        if not sep or len(fields) < 5:
            continue
        raw = fields[4].decode(errors="replace")
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw)
        out.append((point, right.split(b" ", 1)[0].decode(errors="replace")))
    return out


def _in_private_mounts(
    argv: Sequence[str], mounts: PrivateMounts, ns_fd: int, run: dict[str, Any]
) -> int:
    # A copy of the base namespace: no other container's mounts (see _base_mounts), no
    # namespace files; this container's own comes back at its path.
    if mounts.netns_path and ns_fd >= 0:
        src = f"/proc/self/fd/{ns_fd}".encode()
        if _mount(src, mounts.netns_path.encode(), None, _MS_BIND, None) != 0:
            raise _os_error(f"cannot bind the sandbox namespace on {mounts.netns_path}")
    ov = mounts.overlay
    if ov is not None:
        opts = f"lowerdir={':'.join(ov.lower)},upperdir={ov.upper},workdir={ov.work}"
        os.chdir(ov.cwd)
        try:
            if _mount(b"overlay", os.fsencode(ov.target), b"overlay", 0, opts.encode()) != 0:
                raise _os_error(f"error mounting rootfs at {ov.target}")
        finally:
            os.chdir("/")
    return subprocess.run(list(argv), check=False, **run).returncode


def _detach_foreign(table: bytes | None = None) -> None:
    """Detach every overlay and namespace-file mount of the current thread's namespace.

    The base namespace is ``rslave``: the host's unmounts reach it (it never keeps a host
    filesystem busy), and so do mounts made later under a *shared* host mount (``/`` on
    systemd hosts, ``/run/netns`` of ``ip netns``): other containers' roots and namespace
    files. Those are detached before each use, so it stays the size it was made (reading
    its small table costs ~0.1 ms).
    """
    if table is None:
        with open("/proc/thread-self/mountinfo", "rb") as f:
            table = f.read()
    for point, fstype in mount_points(table):
        if fstype in _FOREIGN and point != "/":
            _umount2(os.fsencode(point), _MNT_DETACH)


def _detach_tree(folder: str) -> None:
    """Detach ``folder``'s mount (and every mount below it) from the current namespace.

    When ``folder`` is no mount point of its own, the mounts on its entries are detached
    one by one.
    """
    if _umount2(folder.encode(), _MNT_DETACH) == 0:
        return
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        _umount2(os.path.join(folder, name).encode(), _MNT_DETACH)


def _go_home(home: int) -> None:
    if _setns(home, CLONE_NEWNET) != 0:
        raise _Stranded(str(_os_error("cannot return to the daemon's network namespace")))


def _make_sockets(home: int, ns_fd: int, specs: Sequence[SocketSpec]) -> list[socket.socket]:
    if _setns(ns_fd, CLONE_NEWNET) != 0:
        raise _os_error("cannot enter the namespace")
    made: list[socket.socket] = []
    try:
        for spec in specs:
            s = socket.socket(spec.family, spec.type | socket.SOCK_CLOEXEC, spec.proto)
            made.append(s)
            if spec.reuseaddr:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if spec.freebind:
                level = socket.IPPROTO_IPV6 if spec.family == socket.AF_INET6 else 0
                s.setsockopt(level, IP_FREEBIND, 1)
            if spec.bind is not None:
                s.bind(spec.bind)
    except BaseException:
        for s in made:
            s.close()
        _go_home(home)
        raise
    _go_home(home)
    return made


def _write_sysctl(home: int, ns_path: str, key: str, value: str) -> bool:
    ns_fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _setns(ns_fd, CLONE_NEWNET) != 0:
            raise _os_error(f"cannot enter {ns_path}")
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
            return True
        except FileNotFoundError:
            return False
        finally:
            _go_home(home)
    finally:
        os.close(ns_fd)


_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def _link_up(home: int, ns_path: str, ifname: str) -> None:
    import fcntl
    import struct

    ns_fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _setns(ns_fd, CLONE_NEWNET) != 0:
            raise _os_error(f"cannot enter {ns_path}")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                req = struct.pack("16sH22x", ifname.encode(), 0)
                flags = struct.unpack("16sH22x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
                if not flags & _IFF_UP:
                    fcntl.ioctl(
                        s, _SIOCSIFFLAGS, struct.pack("16sH22x", ifname.encode(), flags | _IFF_UP)
                    )
        finally:
            _go_home(home)
    finally:
        os.close(ns_fd)


def _make_netns(home: int, path: str) -> None:
    """Job: a new network namespace, bind-mounted on the existing file ``path``.

    Interfaces made in it later (or moved into it) have IPv6 disabled (a dual-stack network's
    endpoint turns it on for its own interface: ``PyrouteNetlink._enable_ipv6``): on an
    IPv4-only network an IPv6 link-local address there would only let a
    router advertisement give an IPv4-only container an address nobody allocated (what
    Docker fixed in 26.0.2, CVE-2024-32473), and make every new interface send DAD, MLD and
    router solicitations, which a bridge floods to every other port: a per-container cost
    that grew with the number of containers (bench/FINDINGS.md, Scale step 8). ``lo``
    exists already and keeps ``::1``.
    """
    if _unshare(CLONE_NEWNET) != 0:
        raise _os_error("cannot create a network namespace")
    try:
        disable_ipv6(ProcSysctl(), "default")  # resolved in this thread's new namespace
        if _mount(b"/proc/thread-self/ns/net", path.encode(), None, _MS_BIND, None) != 0:
            raise _os_error(f"cannot bind the namespace on {path}")
    finally:
        _go_home(home)


_default: NetnsThread | None = None
_default_lock = threading.Lock()


def default() -> NetnsThread:
    """The process's namespace thread (started at its first job)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = NetnsThread()
        return _default


def shutdown() -> None:
    """Stop the default namespace thread (the daemon calls this on exit)."""
    global _default
    with _default_lock:
        inst, _default = _default, None
    if inst is not None:
        inst.close()
