"""Test doubles: in-memory twins of the daemon's kernel, runtime and store parts.

Nothing in the daemon imports this package; the unit tests build the engine from
these parts (``tests/unit``), and ``mypy --strict`` checks each double against the
Protocol its real twin implements.

* ``store.MemoryStore``: the store contract in memory;
* ``netlink.FakeNetlink`` / ``FakeNetns``: links, addresses and namespaces as records;
* ``runtime.FakeRuntime`` / ``FakeImages``: containers that "run" until told to exit;
* ``firewall.FakeFirewall``, ``nft.FakeNft``, ``sysctl.FakeSysctl``.
"""
