"""Image references: ``name[:tag]``, ids, Docker Hub prefixes."""

from __future__ import annotations

import re

from tether.errors import BadRequest

DEFAULT_TAG = "latest"
_HEX = re.compile(r"^[0-9a-f]{1,64}$")
_NAME_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/")


def is_hex_id(text: str) -> bool:
    return bool(_HEX.match(text))


def split_ref(ref: str) -> tuple[str, str]:
    """``"alpine"`` -> ``("alpine", "latest")``; ``"reg:5000/a/b:1"`` -> ``("reg:5000/a/b", "1")``.

    Docker Hub prefixes are dropped (``docker.io/library/busybox`` is ``busybox``).
    """
    name, tag = ref, ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1 :]
    for prefix in _HUB_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name, tag or DEFAULT_TAG


def normalize(ref: str) -> str:
    """Canonical ``repo:tag`` string of a reference (no validation)."""
    name, tag = split_ref(ref)
    return f"{name}:{tag}"


def validate(repo: str, tag: str) -> None:
    """Raise ``BadRequest`` with Docker's text when ``repo:tag`` is not a valid reference."""
    if not repo:
        raise BadRequest("invalid reference format")
    if repo != repo.lower() and "/" not in repo:
        raise BadRequest("invalid reference format: repository name must be lowercase")
    parts = repo.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        if not _DOMAIN.match(parts[0]):
            raise BadRequest("invalid reference format")
        parts = parts[1:]
    for part in parts:
        if part != part.lower():
            raise BadRequest("invalid reference format: repository name must be lowercase")
        if not _NAME_COMPONENT.match(part):
            raise BadRequest("invalid reference format")
    if not _TAG.match(tag):
        raise BadRequest("invalid reference format")
    if is_hex_id(repo) and len(repo) == 64:
        raise BadRequest(
            "invalid repository name (" + repo + "), cannot specify 64-byte hexadecimal strings"
        )
