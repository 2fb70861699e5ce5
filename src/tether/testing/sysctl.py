"""``FakeSysctl``: a dict of sysctl keys."""

from __future__ import annotations

from tether.errors import NotFound
from tether.linux.sysctl import _check_key


class FakeSysctl:
    """A dict of keys; a key must exist (give ``values``) before it is set."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})
        self.writes: list[tuple[str, str]] = []

    def get(self, key: str) -> str:
        try:
            return self.values[_check_key(key)]
        except KeyError:
            raise NotFound(f"sysctl {key} does not exist") from None

    def set(self, key: str, value: str) -> None:
        if _check_key(key) not in self.values:
            raise NotFound(f"sysctl {key} does not exist")
        self.values[key] = value
        self.writes.append((key, value))

    def add_interface(self, ifname: str) -> None:
        """Make the per-interface keys of a new interface exist, as the kernel does."""
        self.values.setdefault(f"net/ipv4/conf/{ifname}/route_localnet", "0")
        self.values.setdefault(f"net/ipv4/conf/{ifname}/forwarding", "0")
