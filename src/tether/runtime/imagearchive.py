"""Reading ``docker save`` archives: the legacy layout (manifest.json) and the OCI one (index.json).

Blocking code: callers run it in an executor.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tether.errors import BadRequest
from tether.runtime import refs
from tether.runtime.image import arch

Unpack = Callable[[IO[bytes], str], int]
"""``unpack(layer_stream, diff_id)`` -> the layer's size: unpacks one layer into the store."""


def read_archive(path: Path, unpack: Unpack) -> list[tuple[bytes, int, list[str]]]:
    """Unpack every image of a save archive with ``unpack``; return (config, size, tags)."""
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 (closed below)
    except tarfile.TarError as exc:
        raise BadRequest(_untar_error(exc)) from None
    with tar:
        members = {_norm(m.name): m for m in tar.getmembers()}

        def read(name: str) -> bytes:
            m = members.get(_norm(name))
            f = tar.extractfile(m) if m is not None else None
            if f is None:
                raise BadRequest(f"invalid archive: missing {name}")
            return f.read()

        entries: list[tuple[str, list[str], list[str]]] = []  # config path, layers, tags
        if "manifest.json" in members:
            for item in json.loads(read("manifest.json")):
                entries.append(
                    (item["Config"], list(item.get("Layers") or []), item.get("RepoTags") or [])
                )
        elif "index.json" in members:
            entries = _oci_entries(json.loads(read("index.json")), read)
        else:
            raise BadRequest(
                "invalid archive: no manifest.json or index.json (not a docker save tarball)"
            )
        out: list[tuple[bytes, int, list[str]]] = []
        for config_path, layer_paths, tags in entries:
            raw = read(config_path)
            doc = json.loads(raw)
            diff_ids = list((doc.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(layer_paths):
                raise BadRequest("invalid archive: layer count does not match the config")
            total = 0
            for diff_id, layer_path in zip(diff_ids, layer_paths, strict=True):
                m = members.get(_norm(layer_path))
                f = tar.extractfile(m) if m is not None else None
                if f is None:
                    raise BadRequest(f"invalid archive: missing {layer_path}")
                total += unpack(f, diff_id)
            out.append((raw, total, [refs.normalize(t) for t in tags]))
        return out


def _untar_error(exc: tarfile.TarError) -> str:
    """Docker's text for input that is no tar at all (its untar runs in a child process and
    reports Go's archive/tar error): a short input ends early, anything else has no header."""
    text = str(exc)
    if "empty file" in text:
        return "invalid archive: no manifest.json or index.json (not a docker save tarball)"
    why = "unexpected EOF" if "truncated header" in text else "archive/tar: invalid tar header"
    return f"Error processing tar file(exit status 1): {why}"


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _oci_entries(
    index: dict[str, Any], read: Callable[[str], bytes]
) -> list[tuple[str, list[str], list[str]]]:
    """Entries of a pure OCI image layout (no manifest.json)."""

    def blob(digest: str) -> str:
        algo, _, hex_id = digest.partition(":")
        return f"blobs/{algo}/{hex_id}"

    out: list[tuple[str, list[str], list[str]]] = []
    for desc in index.get("manifests") or []:
        ann = desc.get("annotations") or {}
        name = ann.get("io.containerd.image.name") or ""
        ref_name = ann.get("org.opencontainers.image.ref.name") or ""
        tags = [name] if name else ([ref_name] if ref_name and ":" in ref_name else [])
        doc = json.loads(read(blob(desc["digest"])))
        while "manifests" in doc:  # an index: take the platform we run on, else the first
            choices = doc["manifests"]
            pick = next(
                (
                    m
                    for m in choices
                    if (m.get("platform") or {}).get("architecture") == arch()
                    and (m.get("platform") or {}).get("os", "linux") == "linux"
                ),
                choices[0] if choices else None,
            )
            if pick is None:
                break
            doc = json.loads(read(blob(pick["digest"])))
        if "config" not in doc:
            continue
        out.append(
            (
                blob(doc["config"]["digest"]),
                [blob(layer["digest"]) for layer in doc["layers"]],
                tags,
            )
        )
    return out
