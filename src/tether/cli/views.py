"""What the read-only verbs print: ``network ls/inspect``, ``ps``, ``images``, ``version``.

One function per verb takes a :class:`~tether.client.Client` and the verb's already-parsed
options, asks the daemon and returns the text to print. The click commands and the
hand-parsed fast path (:mod:`tether.cli.fast`) both call these, so the two print the same
bytes by construction. No click import here (it costs ~30 ms of a command's start-up).
"""

from __future__ import annotations

import sys

from tether import jsonlite
from tether.cli.text import (
    ago,
    fail,
    go_time,
    human_size,
    natural_key,
    parse_time,
    render_format,
    short_id,
    tabwrite,
)

# typing is not imported at run time (~2.5 ms of start-up); mypy reads the names below.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tether.client import Client

# ---------------------------------------------------------------- inspect


def inspect_text(items: list[Any], fmt: str) -> str:
    """Inspect results as a JSON array, or one template line per item."""
    if fmt:
        from tether.cli.gotemplate import Template, TemplateError

        try:
            tmpl = Template(fmt)
            return "".join(tmpl.execute(i) + "\n" for i in items)
        except TemplateError as e:
            fail(f"template parsing error: {e}")
    return (jsonlite.dumps(items, indent=4, ensure_ascii=False) if items else "[]") + "\n"


def inspect_networks(
    c: Client, names: list[str], fmt: str, verbose: bool
) -> tuple[list[Any], list[str]]:
    """GET each network: (found items, error lines)."""
    from tether.client import APIError

    items: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            items.append(c.get(f"/networks/{name}", {"verbose": verbose or None}))
        except APIError as e:
            errors.append(str(e))
    return items, errors


# ---------------------------------------------------------------- network ls

NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


def network_row(n: dict[str, Any], trunc: bool, created: bool = True) -> dict[str, Any]:
    """The fields ``network ls --format`` exposes for one network (``CreatedAt`` empty
    without ``created``: the table and ``-q`` do not show it, and its parsing imports
    ``re`` and ``datetime``, ~6 ms of a command)."""
    labels = n.get("Labels") or {}
    nid = n.get("Id", "")
    return {
        "ID": nid[:12] if trunc else nid,
        "Name": n.get("Name", ""),
        "Driver": n.get("Driver", ""),
        "Scope": n.get("Scope", ""),
        "IPv6": "true" if n.get("EnableIPv6") else "false",
        "Internal": "true" if n.get("Internal") else "false",
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "CreatedAt": go_time(parse_time(n.get("Created", ""))) if created else "",
        "Label": lambda key: labels.get(key, ""),
    }


def format_networks(nets: list[dict[str, Any]], fmt: str, quiet: bool, no_trunc: bool) -> str:
    nets = sorted(nets, key=lambda n: natural_key(n.get("Name", "")))
    plain = quiet or not fmt or fmt == "table"
    rows = [network_row(n, not no_trunc, created=not plain) for n in nets]
    if quiet:
        return "".join(r["ID"] + "\n" for r in rows)
    if not fmt or fmt == "table":
        table = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"]]
        table += [[r["ID"], r["Name"], r["Driver"], r["Scope"]] for r in rows]
        return tabwrite(table)
    if fmt == "json":
        for r in rows:
            del r["Label"]
    return render_format(fmt, rows, NETWORK_HEADERS)


def list_networks(c: Client, filters: str | None, fmt: str, quiet: bool, no_trunc: bool) -> str:
    """``network ls``; ``filters`` is the encoded query value."""
    nets = c.get("/networks", {"filters": filters})
    return format_networks(nets or [], fmt, quiet, no_trunc)


# ---------------------------------------------------------------- ps

PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "State": "STATE",
    "LocalVolumes": "LOCAL VOLUMES",
}


def ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def go_quote(s: str) -> str:
    """Go's strconv.Quote (close enough: JSON escapes without \\/ and with UTF-8 kept)."""
    return jsonlite.dumps(s, ensure_ascii=False).replace("\\u007f", "\\x7f")


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: group consecutive ports, host mappings last."""

    def key(p: dict[str, Any]) -> tuple[int, str, int, str]:
        return (
            int(p.get("PrivatePort", 0)),
            str(p.get("IP", "")),
            int(p.get("PublicPort", 0)),
            str(p.get("Type", "")),
        )

    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    host_maps: list[str] = []

    def form(k: str, first: int, last: int) -> str:
        ip, _, typ = k.rpartition("/")
        g = str(first) if first == last else f"{first}-{last}"
        if ip:
            g = f"{ip}:{g}->{g}"
        return f"{g}/{typ}"

    for p in sorted(ports, key=key):
        cur = int(p.get("PrivatePort", 0))
        typ = str(p.get("Type", "tcp"))
        ip = str(p.get("IP", ""))
        pkey = typ
        if ip:
            pub = int(p.get("PublicPort", 0))
            if pub != cur:
                host = f"[{ip}]" if ":" in ip else ip
                host_maps.append(f"{host}:{pub}->{cur}/{typ}")
                continue
            pkey = f"{ip}/{typ}"
        g = groups.get(pkey)
        if g is None:
            groups[pkey] = [cur, cur]
            order.append(pkey)
            continue
        if cur == g[1] + 1:
            g[1] = cur
            continue
        result.append(form(pkey, g[0], g[1]))
        groups[pkey] = [cur, cur]
    result += [form(k, groups[k][0], groups[k][1]) for k in order]
    return ", ".join(result + host_maps)


def container_row(ct: dict[str, Any], trunc: bool, now: float | None = None) -> dict[str, Any]:
    """The fields ``ps --format`` exposes for one container of GET /containers/json."""
    names = [n[1:] if n.startswith("/") else n for n in ct.get("Names") or []]
    if trunc:
        for n in names:
            if "/" not in n:
                names = [n]
                break
    cid = str(ct.get("Id", ""))
    image = str(ct.get("Image", ""))
    if trunc and image.startswith("sha256:"):
        image = image[7:19]
    command = str(ct.get("Command", ""))
    labels: dict[str, str] = ct.get("Labels") or {}
    nets = sorted(((ct.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    created = float(ct.get("Created", 0))
    size = ""
    if "SizeRw" in ct or "SizeRootFs" in ct:
        size = f"{human_size(ct.get('SizeRw', 0))} (virtual {human_size(ct.get('SizeRootFs', 0))})"
    return {
        "ID": cid[:12] if trunc else cid,
        "Image": image,
        "Command": go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time(created),
        "RunningFor": ago(created, now),
        "Ports": displayable_ports(ct.get("Ports") or []),
        "Status": str(ct.get("Status", "")),
        "State": str(ct.get("State", "")),
        "Size": size,
        "Names": ",".join(names),
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Mounts": ",".join(
            str(m.get("Name") or m.get("Source", "")) for m in ct.get("Mounts") or []
        ),
        "Networks": ",".join(nets),
        "LocalVolumes": "0",
        "Label": lambda k: labels.get(k, ""),
    }


def format_containers(
    cts: list[dict[str, Any]], fmt: str, quiet: bool, no_trunc: bool, now: float | None = None
) -> str:
    rows = [container_row(ct, not no_trunc, now) for ct in cts]
    if quiet:
        return "".join(r["ID"] + "\n" for r in rows)
    if not fmt or fmt == "table":
        cols = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
        table = [[PS_HEADERS[k] for k in cols]] + [[r[k] for k in cols] for r in rows]
        return tabwrite(table)
    if fmt == "json":
        for r in rows:
            del r["Label"]
    return render_format(fmt, rows, PS_HEADERS)


def list_containers(
    c: Client,
    all_: bool,
    filters: str | None,
    fmt: str,
    last: int,
    latest: bool,
    no_trunc: bool,
    quiet: bool,
    size: bool,
) -> str:
    """``ps``; ``filters`` is the encoded query value."""
    limit = 1 if latest else last
    q = {
        "all": (all_ or limit > 0) or None,
        "limit": limit if limit > 0 else None,
        "size": size or None,
        "filters": filters,
    }
    cts = c.get("/containers/json", q) or []
    return format_containers(cts, fmt, quiet, no_trunc)


# ---------------------------------------------------------------- images

IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}


def split_reference(ref: str) -> tuple[str, str]:
    """``name[:tag]`` -> (name, tag); a ``:`` before the last ``/`` is a registry port."""
    if "@" in ref:
        return ref, ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


def image_rows(images: list[dict[str, Any]], trunc: bool) -> list[dict[str, Any]]:
    rows = []
    for im in images:
        tags = im.get("RepoTags") or ["<none>:<none>"]
        for t in tags:
            repo, tag = split_reference(t)
            created = float(im.get("Created", 0))
            iid = str(im.get("Id", ""))
            rows.append(
                {
                    "ID": short_id(iid) if trunc else iid,
                    "Repository": repo,
                    "Tag": tag or "<none>",
                    "Digest": "<none>",
                    "CreatedSince": ago(created),
                    "CreatedAt": go_time(created),
                    "Size": human_size(float(im.get("Size", 0))),
                }
            )
    return rows


def image_filters(filters: list[str], repository: str | None) -> list[str]:
    """``images [REPOSITORY]`` is a ``reference`` filter."""
    return filters + ([f"reference={repository}"] if repository else [])


def format_images(rows: list[dict[str, Any]], fmt: str, quiet: bool) -> str:
    if quiet:
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        return "".join(i + "\n" for i in seen)
    if not fmt or fmt == "table":
        cols = ["Repository", "Tag", "ID", "CreatedSince", "Size"]
        table = [[IMAGE_HEADERS[k] for k in cols]] + [[r[k] for k in cols] for r in rows]
        return tabwrite(table)
    return render_format(fmt, rows, IMAGE_HEADERS)


def list_images(
    c: Client, all_: bool, filters: str | None, fmt: str, no_trunc: bool, quiet: bool
) -> str:
    """``images``; ``filters`` is the encoded query value (with the reference)."""
    images = c.get("/images/json", {"all": all_ or None, "filters": filters})
    return format_images(image_rows(images or [], not no_trunc), fmt, quiet)


# ---------------------------------------------------------------- version


def client_section() -> str:
    import posix  # not os: the fast path's start-up does without it (~1 ms)

    from tether import API_VERSION, __version__

    # posix.uname / sys.version give what platform.machine() / python_version() would,
    # without importing platform (~2 ms).
    machine = posix.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return (
        "Client:\n"
        f" Version:           {__version__}\n"
        f" API version:       {API_VERSION}\n"
        f" Python version:    {sys.version.split()[0]}\n"
        f" OS/Arch:           linux/{arch}\n"
    )


def server_section(v: dict[str, Any]) -> str:
    return (
        "\nServer:\n"
        " Engine:\n"
        f"  Version:          {v.get('Version', '')}\n"
        f"  API version:      {v.get('ApiVersion', '')}"
        f" (minimum version {v.get('MinAPIVersion', '')})\n"
        f"  Go version:       {v.get('GoVersion', '')}\n"
        f"  Git commit:       {v.get('GitCommit', '')}\n"
        f"  Built:            {v.get('BuildTime', '')}\n"
        f"  OS/Arch:          {v.get('Os', '')}/{v.get('Arch', '')}\n"
        f"  Experimental:     {str(bool(v.get('Experimental'))).lower()}\n"
    )


def version_text(c: Client, fmt: str) -> tuple[str, str | None]:
    """``version``: (text to print, the error to print after it and exit 1, if any)."""
    from tether.client import APIError, ConnectionFailed

    try:
        server: dict[str, Any] | None = c.get("/version")
        err = None
    except (APIError, ConnectionFailed) as e:
        server, err = None, str(e)
    if fmt:
        from tether import API_VERSION, __version__
        from tether.cli.gotemplate import TemplateError, render

        data = {
            "Client": {"Version": __version__, "ApiVersion": API_VERSION, "Os": "linux"},
            "Server": server,
        }
        try:
            return render(fmt, data) + "\n", err
        except TemplateError as e:
            fail(f"template parsing error: {e}")
    out = client_section()
    if server is not None:
        out += server_section(server)
    return out, err
