"""The runtime's side of the engine's bundle step: an OCI bundle written from a BundleSpec."""

from __future__ import annotations

from pathlib import Path

from tether.contracts.runtime import BundleSpec, device_cgroup_rule
from tether.runtime import oci, users


class OciBundles:
    """``tether.engine.seams.Bundles`` over ``oci.build_spec`` and ``oci.write_bundle``."""

    def write_bundle(self, bundle: Path, spec: BundleSpec) -> None:
        user, gids = _user(spec)
        built = oci.build_spec(
            rootfs=spec.rootfs,
            args=spec.args,
            env=spec.env,
            cwd=spec.cwd,
            hostname=spec.hostname,
            terminal=spec.terminal,
            netns_path=spec.netns_path,
            hosts_path=spec.hosts_path,
            resolv_conf_path=spec.resolv_conf_path,
            hostname_path=spec.hostname_path,
            cgroups_path=spec.cgroups_path,
            # P2 (issue 16): volumes, binds and tmpfs, Docker's order
            user_mounts=[
                oci.UserMount(m.destination, m.kind, m.source, m.options) for m in spec.mounts
            ],
            # issue 16, P1: identity, privileges, UTS name, sysctls
            user=(user.uid, user.gid),
            additional_gids=gids,
            readonly_rootfs=spec.readonly_rootfs,
            cap_add=spec.cap_add,
            cap_drop=spec.cap_drop,
            no_new_privileges=spec.no_new_privileges,
            domainname=spec.domainname,
            sysctl=spec.sysctls or None,
        )
        # P3 (issue 16): cgroup limits, namespaces, rlimits, /dev/shm, init
        init = oci.init_binary() if spec.namespaces.init else None
        oci.apply_limits(built, spec.resources, spec.namespaces, init)
        devices = built["linux"]["resources"].setdefault("devices", [])
        devices.extend(device_cgroup_rule(r) for r in spec.device_cgroup_rules)  # issue 17
        if spec.privileged:  # P1: after the limits (every device allowed)
            oci.apply_privileged(built, oci.host_devices())
        oci.write_bundle(bundle, built)


def _user(spec: BundleSpec) -> tuple[users.ExecUser, tuple[int, ...]]:
    """``--user`` and ``--group-add`` resolved against the container's /etc/passwd and
    /etc/group (runc's rules and texts: ``unable to find user nosuch: ...``)."""
    layers = spec.root_layers or ((spec.rootfs,) if Path(spec.rootfs).is_dir() else ())
    return users.resolve_layered(layers, spec.user, spec.group_add)
