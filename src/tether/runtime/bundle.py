"""The runtime's side of the engine's bundle step: an OCI bundle written from a BundleSpec."""

from __future__ import annotations

from pathlib import Path

from tether.contracts.runtime import BundleSpec
from tether.runtime import oci


class OciBundles:
    """``tether.engine.seams.Bundles`` over ``oci.build_spec`` and ``oci.write_bundle``."""

    def write_bundle(self, bundle: Path, spec: BundleSpec) -> None:
        oci.write_bundle(
            bundle,
            oci.build_spec(
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
                user_mounts=[
                    oci.UserMount(m.destination, m.kind, m.source, m.options) for m in spec.mounts
                ],
            ),
        )
