"""Docker's JSON views of an image: ``docker inspect``, ``docker images``, ``docker history``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tether.errors import Internal
from tether.runtime.image import CONTAINER_CONFIG_DEFAULTS, Image, arch, parse_rfc3339


def inspect_json(image: Image, layer_paths: list[Path]) -> dict[str, Any]:
    """``GET /images/{name}/json``; ``layer_paths`` are the image's layers, top first."""
    config = {**CONTAINER_CONFIG_DEFAULTS, **image.config}
    doc = image.document
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": [],
        "Parent": image.parent,
        "Comment": doc.get("comment", ""),
        "Created": image.created,
        "Container": doc.get("container", ""),
        "ContainerConfig": {
            **CONTAINER_CONFIG_DEFAULTS,
            **(doc.get("container_config") or {}),
        },
        "DockerVersion": doc.get("docker_version", ""),
        "Author": doc.get("author", ""),
        "Config": config,
        "Architecture": doc.get("architecture", arch()),
        "Variant": doc.get("variant"),
        "Os": doc.get("os", "linux"),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {
            # the spec wants strings here: leave out what is absent, as Docker does
            "Data": {
                k: v
                for k, v in (
                    ("LowerDir", ":".join(str(p) for p in layer_paths[1:])),
                    ("UpperDir", str(layer_paths[0]) if image.layers else ""),
                )
                if v
            }
            or None,
            "Name": "overlay2",
        },
        "RootFS": {"Type": "layers", "Layers": image.layers},
        "Metadata": {"LastTagTime": image.last_tag_time or "0001-01-01T00:00:00Z"},
    }


def summary_json(image: Image) -> dict[str, Any]:
    """One entry of ``GET /images/json`` (what ``docker images`` prints)."""
    return {
        "Containers": -1,
        "Created": int(parse_rfc3339(image.created)),
        "Id": image.id,
        "Labels": image.labels or None,
        "ParentId": image.parent,
        "RepoDigests": [] if image.repo_tags else ["<none>@<none>"],
        "RepoTags": list(image.repo_tags) or ["<none>:<none>"],
        "SharedSize": -1,
        "Size": image.size,
        "VirtualSize": image.size,
    }


def history_json(image: Image, layer_size: Callable[[str], int]) -> list[dict[str, Any]]:
    """``GET /images/{name}/history``, as Docker derives it from the config's ``history``.

    Newest entry first; only the top entry carries the image id and its tags, the others
    are ``<missing>`` (tether keeps no parent images). ``layer_size(diff_id)`` gives the
    size of each entry that made a layer. Without a ``history`` the answer is empty.
    """
    out: list[dict[str, Any]] = []
    layers = image.layers
    used = 0
    for item in image.document.get("history") or []:
        size = 0
        if not item.get("empty_layer"):
            if used >= len(layers):
                raise Internal("too many non-empty layers in History section")
            size = layer_size(layers[used])
            used += 1
        entry = {
            "Comment": str(item.get("comment") or ""),
            "Created": int(parse_rfc3339(str(item.get("created") or ""))),
            "CreatedBy": str(item.get("created_by") or ""),
            "Id": "<missing>",
            "Size": size,
            "Tags": None,
        }
        out.insert(0, entry)
    if out:
        out[0]["Id"] = image.id
        out[0]["Tags"] = list(image.repo_tags) or None
    return out
