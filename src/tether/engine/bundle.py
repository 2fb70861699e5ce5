"""The OCI bundle step of a start: what the container's spec says, handed to the runtime.

The engine decides the command, environment (with ``HOSTNAME`` and the link variables),
working folder, namespace and sandbox files; the runtime's ``Bundles`` writes the bundle
(``tether.runtime`` owns the OCI spec format).
"""

from __future__ import annotations

from pathlib import Path

from tether.contracts.runtime import BundleSpec
from tether.engine.core import EngineCore
from tether.engine.namespaces import namespace_spec
from tether.engine.record import Container
from tether.engine.resources import resource_spec
from tether.engine.sandboxfiles import SandboxFiles


class BundleStep:
    def __init__(self, core: EngineCore, files: SandboxFiles) -> None:
        self.core = core
        self.files = files

    def write(self, c: Container, ns_path: str | None) -> Path:
        d = self.core.files_dir(c)
        bundle = d / "bundle"
        bundle.mkdir(parents=True, exist_ok=True)
        env = list(c.config.get("Env") or [])
        hostname = (d / "hostname").read_text().strip()
        if not any(e.startswith("HOSTNAME=") for e in env):
            env.append(f"HOSTNAME={hostname}")
        env.extend(self.files.link_env(c))
        spec = BundleSpec(
            rootfs=c.rootfs,
            args=list(c.config["_argv"]),
            env=env,
            cwd=c.config.get("WorkingDir") or "/",
            hostname=hostname,
            terminal=c.tty,
            netns_path=ns_path,
            hosts_path=str(d / "hosts"),
            resolv_conf_path=str(d / "resolv.conf"),
            hostname_path=str(d / "hostname"),
            cgroups_path=f"/tether/{c.id}",
            # P3 (issue 16): cgroup limits; pid/ipc/uts namespaces, rlimits, shm, init
            resources=resource_spec(c.host_config),
            namespaces=namespace_spec(c, self.core.table.find, self._shm_dir),
        )
        self.core.bundles.write_bundle(bundle, spec)
        return bundle

    def _shm_dir(self, c: Container) -> str:
        """P3 (issue 16): a shareable container's /dev/shm, a folder of its files."""
        shm = self.core.files_dir(c) / "shm"
        shm.mkdir(exist_ok=True)
        shm.chmod(0o1777)
        return str(shm)
