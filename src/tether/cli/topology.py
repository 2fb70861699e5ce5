"""``tether topology`` and ``tether path A B``: the daemon's views of the network (issue 19).

Both are clients of ``GET /tether/topology`` and ``GET /tether/path``; this module only
renders: a text tree (default), JSON, Graphviz ``dot`` text, or SVG through ``dot -Tsvg``
when Graphviz is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import click

from tether.cli.util import api_errors, client, fail

CONTEXT = {"help_option_names": ["--help"]}


# ---------------------------------------------------------------- text


def _state(kernel: dict[str, Any] | None, drift: str | None = None) -> str:
    if drift:
        return f"[DRIFT: {drift}]"
    if kernel is None:
        return ""
    return f"[{kernel.get('state', '?')}]"


def _ports(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        host = p.get("host_ip") or "0.0.0.0"
        out.append(f"{host}:{p.get('host_port')}->{p.get('container_port')}/{p.get('proto')}")
    return ", ".join(out)


def _tree(lines: list[str], prefix: str, items: list[str]) -> None:
    for i, item in enumerate(items):
        last = i == len(items) - 1
        head, *rest = item.split("\n")
        lines.append(prefix + ("└─ " if last else "├─ ") + head)
        for more in rest:
            lines.append(prefix + ("   " if last else "│  ") + more)


def _endpoint_text(ep: dict[str, Any], c: dict[str, Any] | None) -> str:
    k = ep.get("kernel") or {}
    inner = _state(k.get("container_side"))
    outer = _state(k.get("host_side"))
    veth = f" <-> {ep['host_ifname']} {outer}".rstrip() if ep.get("host_ifname") else ""
    state = f" ({c['state']})" if c is not None else ""
    line = f"{ep['container']}{state}: {ep['ifname']} {inner} {ep['mac']} {ep['ipv4']}{veth}"
    extra = []
    if c is not None and c.get("ports"):
        extra.append(f"ports {_ports(c['ports'])}")
    names = (c or {}).get("dns_names", {}).get(ep["network"]) or []
    if names:
        extra.append("dns " + ", ".join(names))
    if ep.get("drift"):
        extra.append(f"DRIFT: {ep['drift']}")
    return "\n".join([" ".join(line.split()), *extra])


def topology_text(model: dict[str, Any]) -> str:
    lines: list[str] = []
    containers = {c["name"]: c for c in model.get("containers", [])}
    for h in model.get("hosts", []):
        me = " (this host)" if h.get("self") else ""
        addr = f" {h['address']}" if h.get("address") else ""
        lines.append(f"host {h['name']}{addr}{me}")
    for net in model.get("networks", []):
        subnets = ", ".join(
            s.get("Subnet", "") + (f" gw {s['Gateway']}" if s.get("Gateway") else "")
            for s in net.get("subnets", [])
        )
        flags = " internal" if net.get("internal") else ""
        vni = f" vni {net['vni']}" if net.get("vni") else ""
        lines.append(f"network {net['name']} ({net['driver']}{flags}{vni}) {subnets}".rstrip())
        items = []
        for d in net.get("devices", []):
            where = f" in {d['namespace']}" if d.get("namespace") else ""
            state = _state(d.get("kernel"), d.get("drift"))
            items.append(f"{d['role']} {d['name']}{where} {state}")
        for ep in model.get("endpoints", []):
            if ep["network"] == net["name"]:
                items.append(_endpoint_text(ep, containers.get(ep["container"])))
        for p in net.get("peers", []):
            fdb = _state(None, p.get("drift")) or ("[fdb ok]" if p.get("fdb") else "")
            who = p.get("container") or p["endpoint"][:12]
            items.append(f"peer {who} {p['ip']} {p['mac']} via VTEP {p['vtep']} {fdb}".rstrip())
        _tree(lines, "", [i.rstrip() for i in items])
    others = [c for c in model.get("containers", []) if not c.get("networks")]
    for c in others:
        lines.append(f"container {c['name']} ({c['state']}, network mode {c['network_mode']})")
    drift = model.get("drift", [])
    if drift:
        lines.append(f"drift ({len(drift)}):")
        lines += [f"  {d['kind']} {d['name']}: {d['drift']}" for d in drift]
    elif model.get("kernel_checked"):
        lines.append("no drift: the kernel holds what the store says")
    return "\n".join(lines)


# ---------------------------------------------------------------- dot


def _q(text: str) -> str:
    return json.dumps(text)


def topology_dot(model: dict[str, Any]) -> str:
    out = ["graph tether {", "  rankdir=LR; node [fontname=Helvetica fontsize=10];"]
    for h in model.get("hosts", []):
        out.append(f"  {_q('host:' + (h.get('address') or h['name']))} "
                   f"[shape=house label={_q('host ' + h['name'])}];")  # fmt: skip
    for net in model.get("networks", []):
        devs = net.get("devices", [])
        hub = "net:" + net["name"]
        label = f"{net['name']}\n{net['driver']}"
        out.append(f"  {_q(hub)} [shape=box style=rounded label={_q(label)}];")
        for d in devs:
            color = " color=red" if d.get("drift") else ""
            out.append(f"  {_q('dev:' + d['name'])} [shape=box label="
                       f"{_q(d['role'] + ' ' + d['name'])}{color}];")  # fmt: skip
            out.append(f"  {_q(hub)} -- {_q('dev:' + d['name'])};")
        for p in net.get("peers", []):
            vx = next((d["name"] for d in devs if d["role"] == "vxlan"), hub)
            style = " color=red" if p.get("drift") else " style=dashed"
            label = f"{p.get('container') or p['ip']}"
            out.append(f"  {_q('dev:' + vx if vx != hub else hub)} -- {_q('host:' + p['vtep'])} "
                       f"[label={_q(label)}{style}];")  # fmt: skip
    for c in model.get("containers", []):
        label = f"{c['name']}\n{c['state']}"
        out.append(f"  {_q('c:' + c['name'])} [shape=ellipse label={_q(label)}];")
    for ep in model.get("endpoints", []):
        bridge = next(
            (f"dev:{d['name']}" for n in model.get("networks", []) if n["name"] == ep["network"]
             for d in n.get("devices", [])[:1]),
            "net:" + ep["network"],
        )  # fmt: skip
        label = f"{ep['ifname']} {ep['ipv4']}\n{ep.get('host_ifname', '')}"
        color = " color=red" if ep.get("drift") else ""
        out.append(f"  {_q('c:' + ep['container'])} -- {_q(bridge)} [label={_q(label)}{color}];")
    out.append("}")
    return "\n".join(out)


# ---------------------------------------------------------------- path


def path_text(p: dict[str, Any]) -> str:
    net = f" over {p['network']}" if p.get("network") else ""
    head = f"{p['from']} -> {p['to']}{net}: "
    if p.get("ok"):
        head += "ok"
    else:
        head += f"DROPPED at hop {p['dropped_at']}: {p['reason']}"
    rows = []
    for h in p.get("hops", []):
        state = h.get("verdict") or h.get("state") or ""
        mark = "  <- drops here" if h["hop"] == p.get("dropped_at") else ""
        extra = f" (master {h['master']})" if h.get("master") else ""
        extra += f" ({h['detail']})" if h.get("detail") else ""
        rows.append(f"  {h['hop']:>2}  {h['kind']:<9} {h['name']}  [{h['where']}] "
                    f"{state.upper() if h.get('verdict') else state}{extra}{mark}")  # fmt: skip
    return "\n".join([head, *rows])


# ---------------------------------------------------------------- commands


@click.command("topology", context_settings=CONTEXT)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "dot", "svg"]), default="text",
    help="text tree (default), json, Graphviz dot, or svg (needs Graphviz's dot)",
)  # fmt: skip
@click.option("--no-kernel", is_flag=True, help="Skip the kernel check (no drift)")
@api_errors
def topology(fmt: str, no_kernel: bool) -> None:
    """Show networks, devices, endpoints and containers, checked against the kernel"""
    dot = shutil.which("dot") if fmt == "svg" else None
    if fmt == "svg" and dot is None:
        fail("svg needs Graphviz's dot (apt-get install graphviz); try --format dot")
    model = client().get("/tether/topology", {"kernel": "0" if no_kernel else "1"})
    if fmt == "json":
        click.echo(json.dumps(model, indent=2))
    elif fmt == "dot":
        click.echo(topology_dot(model))
    elif fmt == "svg":
        assert dot is not None
        done = subprocess.run([dot, "-Tsvg"], input=topology_dot(model).encode(),
                              capture_output=True, check=False)  # fmt: skip
        if done.returncode != 0:
            fail(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
        click.echo(done.stdout.decode())
    else:
        click.echo(topology_text(model))


@click.command("path", context_settings=CONTEXT)
@click.argument("src")
@click.argument("dst")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@api_errors
def path(src: str, dst: str, fmt: str) -> None:
    """Show the hops from SRC to DST and the first one that drops (exit 1 when one does)

    SRC and DST: a container (name or id), `host`, or an IPv4 address; DST may end in
    :PORT[/PROTO] (with `host` or an address: a published port)."""
    p = client().get("/tether/path", {"from": src, "to": dst})
    click.echo(json.dumps(p, indent=2) if fmt == "json" else path_text(p))
    if not p.get("ok"):
        raise SystemExit(1)
