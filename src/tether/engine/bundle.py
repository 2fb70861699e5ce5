"""The OCI bundle step of a start: what the container's spec says, handed to the runtime.

The engine decides the command, environment (with ``HOSTNAME`` and the link variables),
working folder, namespace and sandbox files; the runtime's ``Bundles`` writes the bundle
(``tether.runtime`` owns the OCI spec format).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from tether.contracts.runtime import BundleSpec, MountSpec
from tether.engine import mounts as mountlib
from tether.engine import runopts
from tether.engine.core import EngineCore
from tether.engine.namespaces import namespace_spec
from tether.engine.record import Container
from tether.engine.resources import resource_spec
from tether.engine.sandboxfiles import SandboxFiles


class BundleStep:
    def __init__(self, core: EngineCore, files: SandboxFiles) -> None:
        self.core = core
        self.files = files

    def write(self, c: Container, ns_path: str | None, mounts: tuple[MountSpec, ...] = ()) -> Path:
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
            mounts=mounts,
            **self._identity(c),
        )
        self.core.bundles.write_bundle(bundle, spec)
        return bundle

    def _shm_dir(self, c: Container) -> str:
        """P3 (issue 16): a shareable container's /dev/shm, a folder of its files."""
        shm = self.core.files_dir(c) / "shm"
        shm.mkdir(exist_ok=True)
        shm.chmod(0o1777)
        return str(shm)

    # ---- mounts and volumes (issue 16, P2) ------------------------------------------------
    async def user_mounts(self, c: Container) -> tuple[MountSpec, ...]:
        """The container's volumes, binds and tmpfs for the OCI spec. A volume with driver
        options is mounted first; a missing ``Binds`` source folder is made (Docker's)."""
        out: list[MountSpec] = []
        for m in c.mounts:
            dest = m["Destination"]
            if m["Type"] == "tmpfs":
                opts = mountlib.tmpfs_options(m.get("Data") or "")
                out.append(MountSpec(dest, "tmpfs", "tmpfs", tuple(opts)))
                continue
            if m["Type"] == "volume":
                source = await self.core.volumes.source(m["Name"])
            else:
                source = m["Source"]
                if m.get("Create") and not os.path.exists(source):
                    os.makedirs(source, mode=0o755, exist_ok=True)
            out.append(MountSpec(dest, "bind", source, tuple(mountlib.bind_options(m))))
        for dest, data in (c.host_config.get("Tmpfs") or {}).items():
            opts = mountlib.tmpfs_options(str(data or ""))
            out.append(MountSpec(posixpath.normpath(dest), "tmpfs", "tmpfs", tuple(opts)))
        return tuple(out)

    def _identity(self, c: Container) -> dict[str, Any]:
        """Issue 16 (P1): user, groups, capabilities, read-only root, no-new-privileges,
        domain name and sysctls, from the stored config (checked at create)."""
        cfg, hc = c.config, c.host_config
        return {
            "user": str(cfg.get("User") or ""),
            "group_add": tuple(hc.get("GroupAdd") or ()),
            "root_layers": self._root_layers(c),
            "readonly_rootfs": bool(hc.get("ReadonlyRootfs")),
            "cap_add": tuple(runopts.normalize_caps(hc.get("CapAdd"), "CapAdd")),
            "cap_drop": tuple(runopts.normalize_caps(hc.get("CapDrop"), "CapDrop")),
            "privileged": bool(hc.get("Privileged")),
            "no_new_privileges": runopts.parse_security_opt(
                hc.get("SecurityOpt")
            ).no_new_privileges,
            "domainname": str(cfg.get("Domainname") or ""),
            "sysctls": {str(k): str(v) for k, v in (hc.get("Sysctls") or {}).items()},
            "device_cgroup_rules": tuple(str(r) for r in hc.get("DeviceCgroupRules") or ()),
        }

    def _root_layers(self, c: Container) -> tuple[str, ...]:
        """The folders of the container's overlay, top first (its /etc/passwd is read from
        them: the root is mounted only in the runtime's own mount namespace)."""
        overlay = self.core.images.overlay_for(c.id)
        if overlay is None:
            return ()  # mounted on the host already: read it there
        return tuple(
            os.path.normpath(os.path.join(overlay.cwd, p)) for p in (overlay.upper, *overlay.lower)
        )
