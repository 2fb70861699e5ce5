"""``FakeNft``: an in-memory nftables for the firewall's unit tests."""

from __future__ import annotations

import copy
import json
from typing import Any

from tether.linux.nft import JSON, NftError


class FakeNft:
    """An in-memory nftables holding only what tether's batches create.

    State: ``tables[(family, name)] = {"chains": {name: {...,"rules": [...]}},
    "sets": {name: {...}}}`` (maps are sets with a ``map`` key). Each batch runs
    on a copy that replaces the state only when every command succeeded.
    ``fail_next`` makes the next batch fail with that message (after checking it).
    """

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], JSON] = {}
        self.batches: list[JSON] = []
        self.fail_next: str | None = None

    # -- Nft
    def run(self, batch: JSON) -> JSON:
        cmds = batch.get("nftables")
        if not isinstance(cmds, list):
            raise NftError("Error: Invalid JSON: no nftables array")
        self.batches.append(batch)
        state = copy.deepcopy(self.tables)
        out: list[JSON] = []
        for cmd in cmds:
            if not isinstance(cmd, dict) or len(cmd) != 1:
                raise NftError(f"Error: Malformed command: {cmd!r}")
            ((verb, body),) = cmd.items()
            if verb == "metainfo":
                continue
            handler = getattr(self, "_" + verb, None)
            if handler is None:
                raise NftError(f"Error: Unknown command {verb!r}")
            out.extend(handler(state, body))
        if self.fail_next is not None:
            msg, self.fail_next = self.fail_next, None
            raise NftError(msg)
        self.tables = state
        return {"nftables": out}

    # -- verbs
    def _add(self, state: dict[tuple[str, str], JSON], body: JSON) -> list[JSON]:
        kind, obj = _one(body)
        if kind == "table":
            key = (obj["family"], obj["name"])
            state.setdefault(key, {"chains": {}, "sets": {}})
            return []
        table = _table(state, obj)
        if kind == "chain":
            chain = table["chains"].setdefault(obj["name"], {"rules": []})
            for k in ("type", "hook", "prio", "policy"):
                if k in obj:
                    chain[k] = obj[k]
        elif kind in ("set", "map"):
            name = obj["name"]
            if name in table["sets"]:
                old = table["sets"][name]
                if old["type"] != obj["type"] or old.get("map") != obj.get("map"):
                    raise NftError(f"Error: Could not process rule: File exists: {name}")
            else:
                table["sets"][name] = {
                    "kind": kind,
                    "type": obj["type"],
                    **({"map": obj["map"]} if "map" in obj else {}),
                    "elem": [],
                }
            _add_elems(table["sets"][name], obj.get("elem", []))
        elif kind == "rule":
            chain = _chain(table, obj)
            rule = {k: v for k, v in obj.items() if k in ("expr", "comment")}
            chain["rules"].append(copy.deepcopy(rule))
        elif kind == "element":
            _add_elems(_set(table, obj), obj.get("elem", []))
        else:
            raise NftError(f"Error: Unsupported object {kind!r}")
        return []

    def _create(self, state: dict[tuple[str, str], JSON], body: JSON) -> list[JSON]:
        kind, obj = _one(body)
        if kind == "table" and (obj["family"], obj["name"]) in state:
            raise NftError("Error: Could not process rule: File exists")
        return self._add(state, body)

    def _delete(self, state: dict[tuple[str, str], JSON], body: JSON) -> list[JSON]:
        kind, obj = _one(body)
        if kind == "table":
            key = (obj["family"], obj["name"])
            if key not in state:
                raise NftError("Error: Could not process rule: No such file or directory")
            del state[key]
            return []
        table = _table(state, obj)
        if kind == "chain":
            _chain(table, obj)
            del table["chains"][obj["name"]]
        elif kind in ("set", "map"):
            _set(table, obj)
            del table["sets"][obj["name"]]
        elif kind == "element":
            s = _set(table, obj)
            for e in obj.get("elem", []):
                # the kernel takes a map element by its key alone or as [key, data]
                key = e[0] if s.get("map") and isinstance(e, list) else e
                before = len(s["elem"])
                s["elem"] = [x for x in s["elem"] if (x[0] if s.get("map") else x) != key]
                if len(s["elem"]) == before:
                    raise NftError("Error: Could not process rule: No such file or directory")
        else:
            raise NftError(f"Error: Unsupported object {kind!r}")
        return []

    def _flush(self, state: dict[tuple[str, str], JSON], body: JSON) -> list[JSON]:
        kind, obj = _one(body)
        if kind == "ruleset":
            raise NftError("FakeNft: tether never flushes the ruleset")
        table = _table(state, obj)
        if kind == "table":
            for chain in table["chains"].values():
                chain["rules"] = []
        elif kind == "chain":
            _chain(table, obj)["rules"] = []
        elif kind in ("set", "map"):
            _set(table, obj)["elem"] = []
        return []

    def _list(self, state: dict[tuple[str, str], JSON], body: JSON) -> list[JSON]:
        kind, obj = _one(body)
        if kind == "tables":
            return [{"table": {"family": f, "name": n}} for (f, n) in sorted(state)]
        if kind == "ruleset":
            return [o for key in sorted(state) for o in _dump(key, state[key])]
        if kind == "table":
            return _dump((obj["family"], obj["name"]), _table(state, obj))
        raise NftError(f"Error: Unsupported list {kind!r}")


def _one(body: Any) -> tuple[str, JSON]:
    if not isinstance(body, dict) or len(body) != 1:
        raise NftError(f"Error: Malformed command body: {body!r}")
    ((kind, obj),) = body.items()
    return kind, obj if isinstance(obj, dict) else {}


def _table(state: dict[tuple[str, str], JSON], obj: JSON) -> JSON:
    key = (obj.get("family", "ip"), obj.get("table", obj.get("name", "")))
    if key not in state:
        raise NftError("Error: Could not process rule: No such file or directory")
    table: JSON = state[key]
    return table


def _chain(table: JSON, obj: JSON) -> JSON:
    name = obj.get("chain", obj.get("name"))
    if name not in table["chains"]:
        raise NftError("Error: Could not process rule: No such file or directory")
    chain: JSON = table["chains"][name]
    return chain


def _set(table: JSON, obj: JSON) -> JSON:
    if obj.get("name") not in table["sets"]:
        raise NftError("Error: Could not process rule: No such file or directory")
    s: JSON = table["sets"][obj["name"]]
    return s


def _add_elems(s: JSON, elems: list[Any]) -> None:
    """Add elements as the kernel does: an existing key is fine with the same data, and
    ``File exists`` with other data."""
    have = {json.dumps(e[0] if s.get("map") else e, sort_keys=True): e for e in s["elem"]}
    for e in elems:
        k = json.dumps(e[0] if s.get("map") else e, sort_keys=True)
        if k in have:
            if s.get("map") and have[k] != e:
                raise NftError("Error: Could not process rule: File exists")
            continue
        have[k] = e
        s["elem"].append(copy.deepcopy(e))


def _dump(key: tuple[str, str], table: JSON) -> list[JSON]:
    family, name = key
    out: list[JSON] = [{"table": {"family": family, "name": name}}]
    for sname, s in table["sets"].items():
        obj: JSON = {"family": family, "name": sname, "table": name, "type": s["type"]}
        if "map" in s:
            obj["map"] = s["map"]
        if s["elem"]:
            obj["elem"] = copy.deepcopy(s["elem"])
        out.append({s["kind"]: obj})
    for cname, c in table["chains"].items():
        chain: JSON = {"family": family, "table": name, "name": cname}
        chain.update({k: c[k] for k in ("type", "hook", "prio", "policy") if k in c})
        out.append({"chain": chain})
    for cname, c in table["chains"].items():
        for r in c["rules"]:
            out.append({"rule": {"family": family, "table": name, "chain": cname, **r}})
    return out
