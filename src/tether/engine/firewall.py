"""Desired state → tether's nftables tables: replaced whole, or port elements edited.

The engine passes every bridge network (``NetRule``) and every published port
(``PortRule``); ``render`` turns them into one libnftables JSON batch that
replaces tether's tables; ``NftFirewall.apply`` sends it. That whole replace
is the reference: network changes, start-up (reconcile is just ``apply``
again) and drift repair use it, and the kernel then holds exactly what the
store says.

Publishing or unpublishing a container's ports (start, stop, disconnect)
changes only map elements, so ``update_ports(remove, add)`` sends one small
atomic batch of ``delete element`` then ``add element`` commands to the
``dnat_*`` maps instead. Its cost does not grow with the number of ports
already published (measured here: ~0.4 ms with 2, 1,000 or 10,000 ports
published, against ~45 ms / ~385 ms for a whole replace at 1,000 / 10,000).
The firewall remembers the networks and the elements of what it installed,
so the update is computed against the kernel's content, and it refuses
(``Internal``, nothing sent) an update that does not fit it — removing a port
that is not published as given, adding a taken key — so that the caller falls
back to a whole ``apply``. The invariant, tested with ``FakeNft`` and in a
netns with the kernel: after any sequence of updates the table equals the
one ``render(nets, current ports)`` installs.

Tables (``ip6 tether`` exists only while a network is dual-stack, issue 18):

``ip tether`` — owned by tether, replaced whole on every apply.
  Sets ``bridges`` (every tether bridge), ``internal`` (internal bridges) and
  ``icc`` (``bridge . bridge`` pairs of networks whose containers may talk),
  maps ``dnat_any_addr``/``dnat_any_port`` (``proto . port → ip`` and
  ``→ port``) and ``dnat_ip_addr``/``dnat_ip_port`` (``daddr . proto . port``
  → ip, → port): a published port is a map element, never a rule, so the cost
  per packet is flat with 10 or 10,000 ports. (One map to ``ip . port`` would
  do, but nft 1.0.6's JSON parser silently makes a plain set of a map with
  concatenated data; ``dnat to KEY map @addr : KEY map @port`` is equivalent.)

  ``forward`` (filter, priority 0, policy accept — tether judges only traffic
  touching its own bridges; everything else on the host is left alone)::

      ct state established,related accept
      iifname . oifname @icc accept          # within one bridge (seen with br_netfilter);
                                             # internal networks too, unless icc=false
      iifname @internal drop                 # internal: nothing in or out
      oifname @internal drop
      oifname @bridges ct status dnat accept # published ports
      oifname @bridges drop                  # other bridges (isolation), the outside
      iifname @bridges accept                # non-internal bridge → outside

  ``input`` (filter)::

      iifname @bridges ct state established,related accept
      iifname @bridges ip daddr 127.0.0.0/8 drop   # route_localnet guard (CVE-2020-8558)
      iifname "<internal br>" ip daddr != <its gateway> drop

  Internal networks are stricter than Docker's: a container there can reach
  its own gateway address (ping works, as in Docker) but no other host
  address, nothing beyond the host, and it publishes no ports. Its DNS server
  (127.0.0.11) lives in the container's own namespace and is unaffected.

  ``prerouting`` / ``output`` (nat, priority -100): ``fib daddr type local
  jump published``; ``published`` looks up the ``dnat_ip_*`` maps, then
  ``dnat_any_*`` (a miss in a map lookup is a non-match, so it falls through). The
  ``output`` hook makes 127.0.0.1 and the host's own addresses work from the
  host itself (this needs ``route_localnet`` on each bridge, see
  ``tether.linux.sysctl``).

  ``postrouting`` (nat, priority 100), per network: ``ip saddr SUBNET oifname
  != BRIDGE masquerade`` (non-internal, masquerade on), ``ct status dnat ip
  saddr SUBNET oifname BRIDGE masquerade`` (hairpin: a container reaching a
  published port of its own network through a host address), and once
  ``ip saddr 127.0.0.0/8 oifname @bridges masquerade`` (host loopback clients).

``bridge tether`` — owned by tether, only while some network has icc=false.
  Without br_netfilter, traffic between two ports of one Linux bridge never
  reaches the ``ip`` hooks, so ``icc=false`` is enforced at the bridge layer:
  ``ip saddr SUBNET ip daddr SUBNET drop`` in a ``bridge`` forward chain (this
  kernel lacks ``meta ibrname``; tether's subnets never overlap on a host).
  tether never loads br_netfilter (it would send every bridged frame on the
  host, the lab's underlay too, through the IP hooks).

``ip6 tether`` — owned by tether, only while some network is dual-stack.
  The same sets (every tether bridge) and ``forward`` chain as ``ip tether``, so isolation
  and ``--internal`` hold for IPv6 as for IPv4; ``input``: established traffic, neighbour
  discovery (NS/NA: a container must resolve its gateway), ``ip6 daddr ::1 drop``, and an
  internal network reaches only its IPv6 gateway; ``postrouting``: ``ip6 saddr SUBNET6
  oifname != BRIDGE masquerade`` (NAT66 for outbound, as Docker's ``ip6tables`` mode) and
  the hairpin rule. With icc=false the ``bridge tether`` table drops IPv6 within the
  subnet too. When the last dual-stack network goes, the next apply deletes the table (and
  the first apply after a start does, in case a previous run left one).

``ip tether-user`` — the user's, like Docker's ``DOCKER-USER``.
  Whole-table replace and a user chain inside tether's table cannot both hold,
  so the user chain ``tether-user`` is the forward base chain of its own table
  at priority -1 (before tether's ``forward``). tether creates the table and
  chain when the table is missing (first apply after start) and never touches
  them again; ``remove`` leaves them. nftables semantics: a ``drop`` there is
  final; an ``accept`` only ends that chain (tether's forward still runs).
  Packets arrive already DNAT'ed: match published ports with ``ct original
  proto-dst``/``ct original ip daddr``, as with DOCKER-USER's ``--ctorigdstport``.

Replacing idempotently on nft 1.0.6 (no ``destroy``): ``add table`` →
``delete table`` → ``add table …`` in one batch. tether never flushes the
ruleset.

Drift (someone ran ``nft flush ruleset``, deleted tether's table or edited
its chains): the first ``ensure`` after an ``apply`` records the kernel's
listing of tether's tables as a ``Snapshot`` (set and map elements as
unordered dicts: the kernel lists a hash set in no fixed order; a missing
table is drift at once); later ones list again and re-apply the desired state
when the two differ (and re-create an empty ``tether-user`` when that is gone
too). ``update_ports`` patches the recorded snapshot with the elements it
changed (no listing on the publish path), so the check keeps comparing
against exactly what is installed. An edit made between an apply and the next
check is taken as installed until the next apply. The engine calls it every
few seconds and the daemon's start applies anyway, so the table comes back
exactly, from the store, without touching other tables. Its cost does grow
with the ports: listing 1,000 / 10,000 elements takes ~65 / ~710 ms (+ ~11 /
~110 ms for the ``Snapshot``), and a publish that arrives meanwhile waits for
it (the engine holds its firewall lock; libnftables serialises the calls).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tether.engine.fwrender import (
    BRIDGE_FAMILY,
    FAMILY,
    FAMILY6,
    PROTOS,
    TABLE,
    USER_CHAIN,
    USER_PRIORITY,
    USER_TABLE,
    Elem,
    NetRule,
    PortRule,
    Published,
    check_port,
    port_elem,
    render,
    render_port_update,
    render_remove,
    render_remove6,
    render_state,
    render_user_table,
)
from tether.errors import Internal
from tether.linux.nft import JSON, LibNft, Nft, NftError

__all__ = [
    "BRIDGE_FAMILY",
    "FAMILY",
    "PROTOS",
    "TABLE",
    "USER_CHAIN",
    "USER_PRIORITY",
    "USER_TABLE",
    "Firewall",
    "NetRule",
    "NftFirewall",
    "PortRule",
    "Snapshot",
    "render",
    "render_port_update",
    "render_remove",
    "render_user_table",
]


class Firewall(Protocol):
    def apply(self, nets: Sequence[NetRule], ports: Sequence[PortRule]) -> None:
        """Make the kernel hold exactly this state (atomic); ``Internal`` on failure."""
        ...

    def update_ports(self, remove: Sequence[PortRule], add: Sequence[PortRule]) -> None:
        """Change only port map elements, against the last ``apply``; ``Internal`` when the
        update does not fit what is installed (the caller then applies the whole state)."""
        ...

    def remove(self) -> None:
        """Delete tether's own tables (never the user's ``tether-user``)."""
        ...

    def current(self) -> JSON | None:
        """tether's tables as the kernel lists them now (without handles), or None."""
        ...

    def ensure(self, nets: Sequence[NetRule], ports: Sequence[PortRule]) -> bool:
        """Re-apply when tether's tables are not as the last apply left them; True if so."""
        ...


def _list_table(nft: Nft, family: str, name: str) -> list[JSON] | None:
    try:
        out = nft.run({"nftables": [{"list": {"table": {"family": family, "name": name}}}]})
    except NftError:
        return None
    items = out.get("nftables", [])
    return [_no_handles(o) for o in items if isinstance(o, dict) and "metainfo" not in o]


def _no_handles(obj: JSON) -> JSON:
    """The object without kernel handles, which change on every replace."""
    return {kind: {k: v for k, v in body.items() if k != "handle"} for kind, body in obj.items()}


def _ekey(key: Any) -> str:
    return json.dumps(key, sort_keys=True)


@dataclass
class Snapshot:
    """A listing of tether's tables, with set and map elements as unordered dicts.

    The kernel lists a hash set's elements in no fixed order, so elements are
    compared as ``{key: data}`` (``None`` for a plain set); everything else is
    compared as listed. ``patch`` applies a port update without listing again.
    """

    objects: list[JSON]
    elems: dict[tuple[str, str, str], dict[str, Any]]

    @classmethod
    def of(cls, listing: list[JSON]) -> Snapshot:
        objects: list[JSON] = []
        elems: dict[tuple[str, str, str], dict[str, Any]] = {}
        for o in listing:
            kind = "set" if "set" in o else "map" if "map" in o else ""
            if not kind:
                objects.append(o)
                continue
            body = dict(o[kind])
            raw = body.pop("elem", [])
            objects.append({kind: body})
            if kind == "map":
                got = {_ekey(e[0]): e[1] for e in raw}
            else:
                got = {_ekey(e): None for e in raw}
            elems[(body.get("family", ""), body.get("table", ""), body.get("name", ""))] = got
        return cls(objects, elems)

    def patch(self, gone: Sequence[Elem], new: Sequence[Elem]) -> None:
        for e in gone:
            k = _ekey(e.concat)
            for suffix in ("_addr", "_port"):
                self.elems.setdefault((e.family, TABLE, e.maps + suffix), {}).pop(k, None)
        for e in new:
            k = _ekey(e.concat)
            self.elems.setdefault((e.family, TABLE, e.maps + "_addr"), {})[k] = e.addr
            self.elems.setdefault((e.family, TABLE, e.maps + "_port"), {})[k] = e.port


class NftFirewall:
    """The kernel firewall through libnftables (``LibNft`` unless given another ``Nft``)."""

    def __init__(self, nft: Nft | None = None) -> None:
        self._nft: Nft = nft if nft is not None else LibNft()
        self._user_checked = False
        self._last: Snapshot | None = None
        self._applied = False
        # what the kernel holds since the last apply (None: nothing applied)
        self._by_bridge: dict[str, NetRule] | None = None
        self._published: Published = {}
        # an ``ip6 tether`` table may be in the kernel (an earlier run, a dual-stack network)
        self._maybe6 = True

    def apply(self, nets: Sequence[NetRule], ports: Sequence[PortRule]) -> None:
        batch, by_bridge, published = render_state(nets, ports)
        has6 = any(n.subnet6 for n in nets)
        if not has6 and self._maybe6:
            batch = {"nftables": batch["nftables"] + render_remove6()}
        if not self._user_checked and _list_table(self._nft, FAMILY, USER_TABLE) is None:
            batch = {"nftables": render_user_table()["nftables"] + batch["nftables"]}
        try:
            self._nft.run(batch)
        except NftError as exc:
            raise Internal(f"firewall: nftables rejected the update: {exc.message}") from exc
        self._user_checked = True
        self._maybe6 = has6
        # The listing is taken by the next ``ensure``, not here: listing 1,000 map elements
        # costs ~55 ms, more than the apply itself, and would slow every publish.
        self._last = None
        self._applied = True
        self._by_bridge, self._published = by_bridge, published

    def update_ports(self, remove: Sequence[PortRule], add: Sequence[PortRule]) -> None:
        """Unpublish ``remove`` and publish ``add`` in one small atomic batch.

        The networks are those of the last ``apply``. ``Internal`` (and nothing
        changed) when no apply came first, a removed port is not published as
        given, an added one is taken, or nft rejects the batch: the caller then
        applies the whole state.
        """
        by_bridge = self._by_bridge
        if by_bridge is None:
            raise Internal("firewall: no table applied yet")
        for p in (*remove, *add):
            check_port(p)
        gone: Published = {}
        for p in remove:
            e = port_elem(p, by_bridge)
            if e is not None:
                gone[(e.maps, e.key)] = e
        new: Published = {}
        for p in add:
            e = port_elem(p, by_bridge)
            if e is None:
                continue
            if (e.maps, e.key) in new:
                raise Internal(f"firewall: {e.taken()} published twice")
            new[(e.maps, e.key)] = e
        for k, e in list(gone.items()):
            if self._published.get(k) != e:
                raise Internal(f"firewall: {e.taken()} is not published as the update expects")
            if new.get(k) == e:  # unchanged
                del gone[k], new[k]
        for k, e in new.items():
            if k in self._published and k not in gone:
                raise Internal(f"firewall: {e.taken()} published twice")
        if not gone and not new:
            return
        batch = render_port_update(list(gone.values()), list(new.values()))
        try:
            self._nft.run(batch)
        except NftError as exc:
            raise Internal(f"firewall: nftables rejected the port update: {exc.message}") from exc
        for k in gone:
            del self._published[k]
        self._published.update(new)
        if self._last is not None:
            self._last.patch(list(gone.values()), list(new.values()))

    def published(self) -> list[tuple[str, tuple[Any, ...], str, int]]:
        """What the maps hold by tether's account: (map, key, container ip, container port)."""
        return sorted((e.maps, e.key, e.addr, e.port) for e in self._published.values())

    def remove(self) -> None:
        try:
            self._nft.run(render_remove())
        except NftError as exc:
            raise Internal(f"firewall: cannot remove tether's tables: {exc.message}") from exc
        self._last = None
        self._applied = False
        self._maybe6 = False
        self._by_bridge, self._published = None, {}

    def ensure(self, nets: Sequence[NetRule], ports: Sequence[PortRule]) -> bool:
        now = self.snapshot()
        if (
            now is not None
            and self._maybe6
            and not any(o.get("table", {}).get("family") == FAMILY6 for o in now.objects)
        ):
            now = None  # the ip6 table, installed by the last apply, is gone: drift at once
        if now is not None and self._applied and self._last is None:
            self._last = now  # first check since an apply: this is what it installed
            return False
        if now is not None and now == self._last:
            return False
        self._user_checked = False  # a flushed ruleset took the user's table too
        self.apply(nets, ports)
        return True

    def current(self) -> JSON | None:
        main = _list_table(self._nft, FAMILY, TABLE)
        if main is None:
            return None
        bridge = _list_table(self._nft, BRIDGE_FAMILY, TABLE) or []
        ip6 = _list_table(self._nft, FAMILY6, TABLE) or []
        return {"nftables": main + bridge + ip6}

    def snapshot(self) -> Snapshot | None:
        """``current`` in the order-free form the drift check compares."""
        now = self.current()
        return None if now is None else Snapshot.of(now["nftables"])
