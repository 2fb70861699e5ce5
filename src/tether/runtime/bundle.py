"""The runtime's side of the engine's bundle step: an OCI bundle written from a BundleSpec."""

from __future__ import annotations

from pathlib import Path

from tether.contracts.runtime import BundleSpec
from tether.runtime import oci


class OciBundles:
    """``tether.engine.seams.Bundles`` over ``oci.build_spec`` and ``oci.write_bundle``."""

    def write_bundle(self, bundle: Path, spec: BundleSpec) -> None:
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
        )
        # P3 (issue 16): cgroup limits, namespaces, rlimits, /dev/shm, init
        init = oci.init_binary() if spec.namespaces.init else None
        oci.apply_limits(built, spec.resources, spec.namespaces, init)
        oci.write_bundle(bundle, built)
