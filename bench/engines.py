"""The engines under test, each in its own lab host (network namespace), driven by a CLI.

- tether: the lab's own daemon (``python -m tether daemon``), driven by the docker CLI.
- docker: ``dockerd`` (Debian docker.io, with its managed containerd) started with
  ``nsenter --net=<lab host netns>`` and private data/exec roots, pid file and socket, so its
  bridge and iptables rules live in that namespace; driven by the same docker CLI.
- podman: no daemon; every ``podman`` command runs inside the lab host's namespace with
  private ``--root``/``--runroot``/``--tmpdir``/``--network-config-dir`` and ``--runtime runc``.
  (netavark keeps its run state in /run/containers/networks whatever the flags say.)

Every CLI call is made the same way (fork, ``setns`` into the engine's namespace, exec), so the
client cost is equal; docker and tether even share the binary.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from bench.netns import preexec
from tether.lab import probe
from tether.lab.lab import Lab, LabHost

DOCKER_CLI = "/usr/local/bin/docker"
DNS_UPSTREAM = "198.18.0.1"  # the lab gateway: lab-internal, nothing real behind it


@dataclass
class CliResult:
    ms: float
    rc: int
    out: str
    err: str


class BenchError(RuntimeError):
    pass


def proc_mem(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def find_procs(comm_prefix: str, needle: str) -> list[int]:
    """Pids whose name starts with ``comm_prefix`` and whose command line contains ``needle``."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                comm = f.read().strip()
            if not comm.startswith(comm_prefix):
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            out.append(int(d))
    return out


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Engine:
    name = "?"
    monitor_comm = "conmon"

    def __init__(self, lab: Lab, host: LabHost) -> None:
        self.lab = lab
        self.host = host
        self.version = "?"
        self.run_opts: list[str] = []
        self.rm_opts: list[str] = ["-f"]

    @property
    def docker_host(self) -> str | None:
        """``unix://...`` of a Docker-API socket, None for podman."""
        return self.host.docker_host

    # -- the client
    def argv(self, args: tuple[str, ...]) -> list[str]:
        return [DOCKER_CLI, *args]

    def env(self) -> dict[str, str]:
        return self.host.docker_env()

    def cli(self, *args: str, check: bool = True, timeout: float = 120.0) -> CliResult:
        argv = self.argv(args)
        env = self.env()
        t0 = time.perf_counter()
        p = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec(self.host.netns_path),
        )
        ms = (time.perf_counter() - t0) * 1000
        if check and p.returncode != 0:
            raise BenchError(f"{self.name}: {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return CliResult(ms, p.returncode, p.stdout, p.stderr)

    # -- life cycle
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def import_image(self, tarball: str) -> None:
        self.cli("import", "-c", 'CMD ["/bin/sh"]', tarball, "alpine:latest", timeout=120)

    def cleanup(self) -> None:
        """Remove every container and the bench networks (not timed)."""
        ids = self.cli("ps", "-aq", check=False).out.split()
        if ids:
            self.cli("rm", *self.rm_opts, *ids, check=False, timeout=300)
        # dockerd may still be releasing the endpoints of a large removal ("has active
        # endpoints"): try again for a while (the scale case's fills use their own names)
        for _ in range(20):
            nets = self.cli("network", "ls", "--format", "{{.Name}}", check=False).out.split()
            mine = [n for n in nets if n.startswith("bench")]
            if not mine or self.cli("network", "rm", *mine, check=False).rc == 0:
                return
            time.sleep(0.5)
        print(f"[bench] {self.name}: networks left behind: {' '.join(mine)}", flush=True)

    # -- memory
    def daemon_memory(self) -> dict[str, tuple[int, int]]:
        """Daemon process name -> (RSS, PSS) in bytes; empty when there is no daemon."""
        return {}

    def monitor_pids(self) -> list[int]:
        return find_procs(self.monitor_comm, self.host.dir)


class Tether(Engine):
    name = "tether"
    debug = False  # --debug daemon (bench.scale_probe --phases reads its phase lines)

    def start(self) -> None:
        with open(self.host.config_file, "w") as f:
            json.dump({"dns": [DNS_UPSTREAM], "debug": self.debug}, f)
        self.lab.start_daemon(self.host.name)
        v = self.cli("version", "--format", "{{.Server.Version}}", check=False)
        self.version = f"tether {v.out.strip() or '?'}"

    def daemon_memory(self) -> dict[str, tuple[int, int]]:
        pid = self.host.daemon_pid
        if pid is None:
            return {}
        rss, pss = proc_mem(pid)
        for c in children(pid):  # short-lived helpers, if any are alive right now
            r, p = proc_mem(c)
            rss, pss = rss + r, pss + p
        return {"tether": (rss, pss)}


class Docker(Engine):
    name = "docker"
    monitor_comm = "containerd-shim"

    def __init__(self, lab: Lab, host: LabHost) -> None:
        super().__init__(lab, host)
        d = host.dir
        self.data_root = os.path.join(d, "docker")
        self.exec_root = os.path.join(d, "dx")
        self.sock = os.path.join(d, "docker.sock")
        self.pidfile = os.path.join(d, "docker.pid")
        self.log = os.path.join(d, "dockerd.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def docker_host(self) -> str | None:
        return f"unix://{self.sock}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = f"unix://{self.sock}"
        return env

    def start(self) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise BenchError("dockerd is not installed")
        os.makedirs(self.data_root, exist_ok=True)
        os.makedirs(self.exec_root, exist_ok=True)
        argv = [
            "nsenter", f"--net={self.host.netns_path}", dockerd,
            "--data-root", self.data_root, "--exec-root", self.exec_root,
            "-H", f"unix://{self.sock}", "--pidfile", self.pidfile,
            "--iptables=true", "--dns", DNS_UPSTREAM,
            # IPv6 published ports DNAT in the kernel, as tether's (bench/ipv6_case.py);
            # Docker 20.10 has ip6tables behind --experimental. IPv4 paths are unchanged.
            "--experimental", "--ip6tables",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while not probe.daemon_ready(self.sock, timeout=1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"dockerd did not start; see {self.log}")
            time.sleep(0.1)
        v = self.cli("version", "--format", "{{.Server.Version}}", check=False)
        self.version = f"dockerd {v.out.strip()}"
        c = subprocess.run(["containerd", "--version"], capture_output=True, text=True)
        if c.returncode == 0:
            self.version += f", containerd {c.stdout.split()[2]}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def daemon_memory(self) -> dict[str, tuple[int, int]]:
        if self.proc is None or self.proc.poll() is not None:
            return {}
        out = {"dockerd": proc_mem(self.proc.pid)}
        for pid in find_procs("containerd", os.path.join(self.exec_root, "containerd")):
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "containerd":
                    out["containerd"] = proc_mem(pid)
        return out


class Podman(Engine):
    name = "podman"

    def __init__(self, lab: Lab, host: LabHost) -> None:
        super().__init__(lab, host)
        d = host.dir
        self.dirs = {k: os.path.join(d, k) for k in ("proot", "prun", "ptmp", "pnet")}
        self.run_opts = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
        self.rm_opts = ["-f", "-t", "0"]

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return [
            "podman", "--root", self.dirs["proot"], "--runroot", self.dirs["prun"],
            "--tmpdir", self.dirs["ptmp"], "--network-config-dir", self.dirs["pnet"],
            "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--storage-driver", "overlay", *args,
        ]  # fmt: skip

    @property
    def docker_host(self) -> str | None:
        return None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DOCKER_HOST", None)
        return env

    def start(self) -> None:
        if shutil.which("podman") is None:
            raise BenchError("podman is not installed (apt-get install podman)")
        for p in self.dirs.values():
            os.makedirs(p, exist_ok=True)
        v = self.cli("version", "--format", "{{.Client.Version}}")
        self.version = f"podman {v.out.strip()}"
        for tool in ("netavark", "aardvark-dns"):
            path = f"/usr/lib/podman/{tool}"
            if os.path.exists(path):
                r = subprocess.run([path, "--version"], capture_output=True, text=True)
                self.version += f", {r.stdout.strip()}"


ENGINES: dict[str, type[Engine]] = {"tether": Tether, "docker": Docker, "podman": Podman}
