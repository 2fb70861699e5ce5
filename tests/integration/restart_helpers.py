"""Helpers for the restart, fault and events tests: image set-up and a consistency check.

``check_consistent`` compares a lab host's store (read-only, straight from its SQLite
file), its kernel objects (veths in the host namespace, sandbox namespaces) and what the
API reports; it returns a list of problems (empty when consistent).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from tether.lab.lab import LabHost

from .helpers import docker, in_host

REPO = Path(__file__).resolve().parents[2]


def import_image(host: LabHost, tmp: Path) -> None:
    tar = tmp / "busybox.tar"
    if not tar.exists():
        subprocess.run([str(REPO / "scripts" / "build-busybox-image.sh"), str(tar)], check=True)
    docker(host, "import", "-c", 'CMD ["/bin/sh"]', str(tar), "alpine:latest", check=True)


def inspect(host: LabHost, ref: str) -> dict[str, Any]:
    r = docker(host, "inspect", "--type", "container", ref, check=True)
    out: list[dict[str, Any]] = json.loads(r.stdout)
    return out[0]


def status(host: LabHost, ref: str) -> str:
    return str(inspect(host, ref)["State"]["Status"])


def store_records(host: LabHost, prefix: str) -> dict[str, Any]:
    db = Path(host.data_root) / "tether.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT key, value FROM kv WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff")
        ).fetchall()
    finally:
        con.close()
    return {k: json.loads(v) for k, v in rows}


def check_consistent(host: LabHost) -> list[str]:
    problems: list[str] = []
    ids = docker(host, "ps", "-aq", "--no-trunc", check=True).stdout.split()
    containers = [inspect(host, cid) for cid in ids]
    records = store_records(host, "containers/")
    if {f"containers/{c['Id']}" for c in containers} != set(records):
        problems.append(f"API containers {sorted(ids)} != store {sorted(records)}")
    held: set[tuple[str, str]] = set()
    endpoints: set[str] = set()
    running: set[str] = set()
    optional: set[str] = set()  # a restarting container may keep its sandbox
    for c in containers:
        st = c["State"]["Status"]
        if st not in ("created", "running", "exited", "restarting"):
            problems.append(f"{c['Name']}: state {st}")
        if st in ("running", "restarting"):
            running.add(c["Id"])
        rec = records.get(f"containers/{c['Id']}") or {}
        if not rec.get("rootfs"):
            problems.append(f"{c['Name']}: no root filesystem")
        for nid, ep in (rec.get("endpoints") or {}).items():
            if not ep.get("ip"):
                continue
            key = (nid, ep["ip"])
            if key in held:
                problems.append(f"address {key} held twice")
            held.add(key)
            if st == "running":
                endpoints.add("tv" + ep["id"][:13])
            elif st == "restarting":
                optional.add("tv" + ep["id"][:13])
    ipam: set[tuple[str, str]] = set()
    for key in store_records(host, "ipam/"):
        _, nid, ip = key.split("/", 2)
        ipam.add((nid, ip))
    if ipam != held:
        problems.append(f"ipam records {sorted(ipam - held)} leaked, {sorted(held - ipam)} missing")
    links = in_host(host, "ip", "-o", "link", "show", check=True).stdout
    veths = {
        line.split(":")[1].strip().split("@")[0]
        for line in links.splitlines()
        if line.split(":")[1].strip().startswith("tv")
    }
    if not endpoints <= veths <= endpoints | optional:
        problems.append(
            f"veths {sorted(veths - endpoints)} orphaned, {sorted(endpoints - veths)} missing"
        )
    ns_dir = Path(host.exec_root) / "netns"
    namespaces = set(os.listdir(ns_dir)) if ns_dir.is_dir() else set()
    short = {cid[:12] for cid in running}  # sandboxes are named by short id
    if not namespaces <= short:
        problems.append(f"namespaces {sorted(namespaces - short)} orphaned")
    return problems
