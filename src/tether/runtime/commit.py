"""``docker commit``: a container's own layer over its image's layers becomes a new image.

The container's upper directory (overlayfs) is written as a layer tar (``runtime.layertar``:
whiteouts become AUFS-style ``.wh.`` entries again) and unpacked into the layer store like
any loaded layer, so the new layer's DiffID is the sha256 of that tar, as Docker's. The
paths of Docker's init layer (``/etc/hosts``, ``/etc/resolv.conf``, ``/dev``, ...) are left
out, as Docker's commit leaves its init layer out. A commit with no change adds no layer
(Docker's empty layer: its history entry says ``empty_layer``).

The image's config is Docker's ``merge(userConf, containerConf)`` (daemon/commit.go): the
request's config with the ``changes`` applied, where it leaves a field unset, takes the
container's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tether.runtime.image import Image, arch, now_rfc3339

EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
"""DiffID of an empty layer tar (1024 zero bytes): Docker's ``DigestSHA256EmptyTar``."""


@dataclass
class CommitSpec:
    """What a commit records besides the layer (the ``POST /commit`` parameters)."""

    container_id: str
    container_config: dict[str, Any]  # the container's Config (its inspect "Config")
    config: dict[str, Any] = field(default_factory=dict)  # the request's, changes applied
    author: str = ""
    comment: str = ""


def _merge_map(user: dict[str, Any] | None, base: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(base or {})
    out.update(user or {})
    return out


def merge_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``merge``: fields the user's config leaves unset come from the container's."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = container.get("User") or ""
    if out.get("ExposedPorts") or container.get("ExposedPorts"):
        out["ExposedPorts"] = _merge_map(out.get("ExposedPorts"), container.get("ExposedPorts"))
    env = list(container.get("Env") or [])
    for item in out.get("Env") or []:
        key = item.split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != key] + [item]
    out["Env"] = env or None
    out["Labels"] = _merge_map(out.get("Labels"), container.get("Labels"))
    if not out.get("Entrypoint") and not out.get("Cmd"):
        out["Cmd"] = container.get("Cmd")
        out["Entrypoint"] = container.get("Entrypoint")
    if out.get("Healthcheck") is None and container.get("Healthcheck") is not None:
        out["Healthcheck"] = container["Healthcheck"]
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir") or ""
    if out.get("Volumes") or container.get("Volumes"):
        out["Volumes"] = _merge_map(out.get("Volumes"), container.get("Volumes")) or None
    if not out.get("StopSignal") and container.get("StopSignal"):
        out["StopSignal"] = container["StopSignal"]
    return out


def commit_document(parent: Image, diff_id: str, spec: CommitSpec) -> bytes:
    """The new image's config document (moby's ``image.NewChildImage`` shape)."""
    created = now_rfc3339()
    empty = diff_id == EMPTY_LAYER
    entry: dict[str, Any] = {"created": created}
    if spec.author:
        entry["author"] = spec.author
    entry["created_by"] = " ".join(spec.container_config.get("Cmd") or [])
    if spec.comment:
        entry["comment"] = spec.comment
    if empty:
        entry["empty_layer"] = True
    doc = parent.document
    document: dict[str, Any] = {
        "architecture": doc.get("architecture") or arch(),
        "author": spec.author or None,
        "config": merge_config(spec.config, spec.container_config),
        "container": spec.container_id,
        "container_config": spec.container_config,
        "created": created,
        "docker_version": "20.10.24",
        "history": [*(doc.get("history") or []), entry],
        "os": doc.get("os") or "linux",
        "rootfs": {
            "type": "layers",
            "diff_ids": [*parent.layers, *([] if empty else [diff_id])],
        },
    }
    if document["author"] is None:
        del document["author"]
    return json.dumps(document, separators=(",", ":")).encode()
